//! Eigenvalues of small symmetric matrices (cyclic Jacobi).

/// Eigenvalues of the symmetric `n x n` matrix `a` (row-major), ascending.
pub(crate) fn sym_eigenvalues(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    assert_eq!(a.len(), n * n);
    let norm: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        return vec![0.0; n];
    }
    for _sweep in 0..100 {
        let mut off = 0.0;
        for p in 0..n {
            for q in p + 1..n {
                off += a[p * n + q] * a[p * n + q];
            }
        }
        if off.sqrt() <= 1e-15 * norm {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let app = a[p * n + p];
                let aqq = a[q * n + q];
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    let mut ev: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
    ev.sort_by(|x, y| x.partial_cmp(y).unwrap());
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_eigenvalues() {
        // [[2,1,0],[1,2,0],[0,0,5]] -> 1, 3, 5
        let ev = sym_eigenvalues(vec![2., 1., 0., 1., 2., 0., 0., 0., 5.], 3);
        for (a, b) in ev.iter().zip([1.0, 3.0, 5.0]) {
            assert!((a - b).abs() < 1e-12, "{ev:?}");
        }
        // Trace and determinant of a random symmetric 4x4 are preserved.
        let m = vec![
            4.0, -2.0, 0.5, 1.0, -2.0, 3.0, 0.2, 0.0, 0.5, 0.2, 1.0, -0.7, 1.0, 0.0, -0.7, 2.0,
        ];
        let ev = sym_eigenvalues(m, 4);
        assert!((ev.iter().sum::<f64>() - 10.0).abs() < 1e-12);
    }
}
