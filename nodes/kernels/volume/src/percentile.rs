//! `numpy.percentile(a, q)` with its default method ("linear"), one definition for every node
//! and kernel.

/// `numpy.percentile(values, q)` (method "linear", `q` in 0..=100); `None` for no values.
/// Reorders `values` (a partial sort, O(n)).
pub fn percentile_linear(values: &mut [f64], q: f64) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let (lo, t) = rank(n, q);
    let (_, &mut a, rest) = values.select_nth_unstable_by(lo, f64::total_cmp);
    if lo + 1 >= n || t == 0.0 {
        return Some(a);
    }
    let b = rest.iter().copied().fold(f64::INFINITY, f64::min);
    Some(lerp(a, b, t))
}

/// [`percentile_linear`] of an ascending `sorted` slice (many percentiles of one set); `None`
/// for no values.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let (lo, t) = rank(n, q);
    if lo + 1 >= n || t == 0.0 {
        return Some(sorted[lo]);
    }
    Some(lerp(sorted[lo], sorted[lo + 1], t))
}

/// numpy's virtual index `(n - 1) q / 100`, clamped to the values: (its floor, fraction).
fn rank(n: usize, q: f64) -> (usize, f64) {
    let pos = (q / 100.0 * (n - 1) as f64).clamp(0.0, (n - 1) as f64);
    let lo = pos.floor();
    (lo as usize, pos - lo)
}

/// numpy's `_lerp`: `a + (b - a) t`, computed from the upper end when `t >= 0.5`, so exact
/// ties (which the robust MAD of radiomics depends on) come out as numpy's.
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy() {
        // numpy.percentile([1, 2, 3, 4, 10], [0, 25, 50, 90, 100]) = 1, 2, 3, 7.6, 10
        for (q, want) in [
            (0.0, 1.0),
            (25.0, 2.0),
            (50.0, 3.0),
            (90.0, 7.6),
            (100.0, 10.0),
        ] {
            let mut v = [10.0, 3.0, 1.0, 4.0, 2.0];
            let got = percentile_linear(&mut v, q).unwrap();
            assert!((got - want).abs() < 1e-12, "q {q}: {got} vs {want}");
            let sorted = [1.0, 2.0, 3.0, 4.0, 10.0];
            assert_eq!(percentile_sorted(&sorted, q), Some(got));
        }
        // numpy.percentile([1, 2, 3, 4], [10, 50, 90]) = 1.3, 2.5, 3.7
        let a = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile_sorted(&a, 50.0), Some(2.5));
        assert!((percentile_sorted(&a, 10.0).unwrap() - 1.3).abs() < 1e-12);
        assert!((percentile_sorted(&a, 90.0).unwrap() - 3.7).abs() < 1e-12);
        assert_eq!(percentile_sorted(&[5.0], 90.0), Some(5.0));
        // np.percentile([4, 1, 3, 2], 95) = 3.85; [0, 10] at 50 -> 5
        let p95 = percentile_linear(&mut [4.0, 1.0, 3.0, 2.0], 95.0).unwrap();
        assert!((p95 - 3.85).abs() < 1e-12, "{p95}");
        assert_eq!(percentile_linear(&mut [10.0, 0.0], 50.0), Some(5.0));
        assert_eq!(percentile_linear(&mut [3.0, 1.0, 2.0], 100.0), Some(3.0));
    }

    #[test]
    fn empty_has_none() {
        assert_eq!(percentile_linear(&mut [], 50.0), None);
        assert_eq!(percentile_sorted(&[], 50.0), None);
    }
}
