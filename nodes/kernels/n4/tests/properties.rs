//! Property tests from the definitions (no oracle needed).

use ndarray::Array3;
use voxflow_n4::{bspline, n4, otsu_mask, N4Error, N4Params};

/// Deterministic pseudo-random numbers in [-1, 1) (xorshift).
fn rand_vec(n: usize, mut s: u64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

fn random_lattice(c: usize, seed: u64) -> Array3<f64> {
    Array3::from_shape_vec((c, c, c), rand_vec(c * c * c, seed)).unwrap()
}

/// Direct evaluation of the tensor B-spline at one voxel.
fn eval_direct(l: &Array3<f64>, grid: [usize; 3], x: [usize; 3], p: usize) -> f64 {
    let d = l.dim();
    let lat = [d.0, d.1, d.2];
    let mut first = [0usize; 3];
    let mut w = vec![vec![0.0; p + 1]; 3];
    for a in 0..3 {
        let s = (lat[a] - p) as f64;
        let mut u = s * x[a] as f64 / (grid[a] - 1) as f64;
        if u >= s {
            u = s - s / (grid[a] - 1) as f64 * 1e-3;
        }
        first[a] = u.floor() as usize;
        for (j, wj) in w[a].iter_mut().enumerate() {
            *wj = bspline::kernel(p, u - u.floor() - j as f64 + 0.5 * (p as f64 - 1.0));
        }
    }
    let mut s = 0.0;
    for a in 0..=p {
        for b in 0..=p {
            for c in 0..=p {
                s += w[0][a] * w[1][b] * w[2][c] * l[[first[0] + a, first[1] + b, first[2] + c]];
            }
        }
    }
    s
}

#[test]
fn separable_evaluation_matches_direct_sum() {
    let grid = [7, 9, 11];
    for (p, c) in [(3usize, 5usize), (2, 4), (1, 3)] {
        let l = random_lattice(c, 11 + p as u64);
        let f = bspline::evaluate(l.view(), grid, p);
        for x in [[0, 0, 0], [6, 8, 10], [3, 4, 5], [1, 7, 2]] {
            let d = eval_direct(&l, grid, x, p);
            assert!((f[x] - d).abs() < 1e-12, "p={p} {x:?}: {} vs {d}", f[x]);
        }
    }
}

#[test]
fn refinement_preserves_the_function() {
    let grid = [13, 17, 19];
    for (p, c) in [(3usize, 4usize), (3, 7), (2, 5), (1, 3)] {
        let l = random_lattice(c, 5 + c as u64);
        let r = bspline::refine(l.view(), p);
        assert_eq!(r.dim(), (2 * c - p, 2 * c - p, 2 * c - p));
        let a = bspline::evaluate(l.view(), grid, p);
        let b = bspline::evaluate(r.view(), grid, p);
        let err = a
            .iter()
            .zip(b.iter())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-12, "p={p} c={c}: max err {err}");
    }
}

#[test]
fn fit_interpolates_separated_points_exactly() {
    // Lee et al.: points whose (p+1)^3 control neighbourhoods do not overlap are interpolated
    // exactly by one pass. Lattice 11^3 (8 spans) on a 33^3 grid: u = index / 4.
    let grid = [33, 33, 33];
    let idx = [1usize, 18]; // u = 0.25 and 4.5: control ranges 0..=3 and 4..=7
    let mut points = Vec::new();
    let mut values = Vec::new();
    let mut n = 0;
    for &k in &idx {
        for &j in &idx {
            for &i in &idx {
                points.push((k * 33 + j) * 33 + i);
                values.push(0.1 + 0.37 * n as f64 - 0.05 * (n * n) as f64);
                n += 1;
            }
        }
    }
    let lat = bspline::fit(grid, &points, &values, [11, 11, 11], 3);
    let f = bspline::evaluate(lat.view(), grid, 3);
    let fs = f.as_slice().unwrap();
    for (&p, &v) in points.iter().zip(&values) {
        assert!((fs[p] - v).abs() < 1e-12, "at {p}: {} vs {v}", fs[p]);
    }
}

#[test]
fn fit_reproduces_a_field_in_its_span() {
    // A quadratic polynomial is in the span of every cubic B-spline lattice. One Lee et al.
    // pass only approximates it; fitting the residual again and accumulating the lattices (the
    // N4 iteration) converges to it.
    let grid = [12, 14, 16];
    let mut field = Array3::<f64>::zeros((12, 14, 16));
    for ((k, j, i), v) in field.indexed_iter_mut() {
        let (z, y, x) = (k as f64 / 11.0, j as f64 / 13.0, i as f64 / 15.0);
        *v = 0.3 * x - 0.2 * y + 0.1 * z + 0.15 * x * y + 0.05 * z * z;
    }
    let values: Vec<f64> = field.iter().copied().collect();
    let points: Vec<usize> = (0..values.len()).collect();
    let max_err = |lat: &Array3<f64>| {
        bspline::evaluate(lat.view(), grid, 3)
            .iter()
            .zip(field.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    };
    let mut lat = bspline::fit(grid, &points, &values, [5, 5, 5], 3);
    let mut errs = vec![max_err(&lat)];
    for it in 1..=400 {
        let cur = bspline::evaluate(lat.view(), grid, 3);
        let res: Vec<f64> = field.iter().zip(cur.iter()).map(|(a, b)| a - b).collect();
        lat += &bspline::fit(grid, &points, &res, [5, 5, 5], 3);
        if it % 100 == 0 {
            errs.push(max_err(&lat));
        }
    }
    // field range is ~0.4
    assert!(errs[0] > 0.05, "one pass is an approximation: {errs:?}");
    assert!(
        errs.windows(2).all(|w| w[1] < w[0]),
        "not decreasing: {errs:?}"
    );
    assert!(
        *errs.last().unwrap() < 0.01,
        "accumulated fit error {errs:?}"
    );
}

#[test]
fn constant_image_times_smooth_field_is_recovered() {
    // two-level constant image (object + darker rim) times a smooth multiplicative field
    let (nk, nj, ni) = (24, 40, 40);
    let mut img = Array3::<f32>::zeros((nk, nj, ni));
    let mut truth = Array3::<f64>::zeros((nk, nj, ni));
    for ((k, j, i), v) in img.indexed_iter_mut() {
        let (z, y, x) = (
            2.0 * k as f64 / (nk - 1) as f64 - 1.0,
            2.0 * j as f64 / (nj - 1) as f64 - 1.0,
            2.0 * i as f64 / (ni - 1) as f64 - 1.0,
        );
        let lf = 0.3 * x - 0.2 * y + 0.1 * z + 0.15 * x * y;
        truth[[k, j, i]] = lf;
        *v = (200.0 * lf.exp()) as f32;
    }
    let mask = Array3::from_elem(img.raw_dim(), true);
    // full-resolution fit (with shrinking, SimpleITK's recipe maps the shrunk and the full grid
    // onto the same parametric domain although they do not cover the same extent)
    let p = N4Params {
        shrink: 1,
        convergence: 0.0,
        ..N4Params::default()
    };
    let out = n4(img.view(), mask.view(), [1.0; 3], &p).unwrap();
    assert_eq!(out.iterations_run, vec![50; 4]);
    // bias proportional to the truth: log bias = truth + const
    let lb: Vec<f64> = out.bias.iter().map(|&b| (b as f64).ln()).collect();
    let t: Vec<f64> = truth.iter().copied().collect();
    let n = lb.len() as f64;
    let off = lb.iter().zip(&t).map(|(a, b)| a - b).sum::<f64>() / n;
    let max_err = lb
        .iter()
        .zip(&t)
        .map(|(a, b)| (a - b - off).abs())
        .fold(0.0, f64::max);
    assert!(max_err < 0.01, "max |log bias - truth - c| = {max_err}");
    // corrected image is nearly constant
    let c: Vec<f64> = out.corrected.iter().map(|&v| v as f64).collect();
    let m = c.iter().sum::<f64>() / n;
    let cv = (c.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n).sqrt() / m;
    let cv_in = {
        let c: Vec<f64> = img.iter().map(|&v| v as f64).collect();
        let m = c.iter().sum::<f64>() / n;
        (c.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n).sqrt() / m
    };
    assert!(cv < 0.002 && cv < cv_in / 50.0, "cv {cv} (input {cv_in})");
}

#[test]
fn otsu_separates_two_levels() {
    let mut img = Array3::<f32>::from_elem((4, 8, 8), 10.0);
    img.slice_mut(ndarray::s![.., .., 4..]).fill(100.0);
    img[[0, 0, 0]] = 12.0;
    let m = otsu_mask(img.view(), 200);
    assert_eq!(m.iter().filter(|&&x| x).count(), 4 * 8 * 4);
    assert!(m[[2, 3, 5]] && !m[[2, 3, 1]] && !m[[0, 0, 0]]);
    // constant image: nothing above the threshold
    let c = Array3::<f32>::from_elem((2, 3, 4), 5.0);
    assert!(otsu_mask(c.view(), 200).iter().all(|&x| !x));
}

#[test]
fn errors_are_reported() {
    let mut img = Array3::<f32>::from_elem((8, 8, 8), 10.0);
    img[[1, 2, 3]] = 20.0;
    let mask = Array3::from_elem((8, 8, 8), true);
    let p = N4Params {
        shrink: 1,
        iterations: vec![2],
        ..N4Params::default()
    };
    let sp = [1.0; 3];

    let wrong = Array3::from_elem((8, 8, 7), true);
    assert!(matches!(
        n4(img.view(), wrong.view(), sp, &p),
        Err(N4Error::ShapeMismatch { .. })
    ));

    let mut neg = img.clone();
    neg[[4, 5, 6]] = 0.0;
    match n4(neg.view(), mask.view(), sp, &p) {
        Err(e @ N4Error::NonPositive { .. }) => {
            assert_eq!(
                e,
                N4Error::NonPositive {
                    index: [4, 5, 6],
                    value: 0.0
                }
            );
            assert!(e.to_string().contains("[4, 5, 6]"));
        }
        r => panic!("expected NonPositive, got {r:?}"),
    }
    // non-positive values outside the mask are fine
    let mut m2 = mask.clone();
    m2[[4, 5, 6]] = false;
    let out = n4(neg.view(), m2.view(), sp, &p).unwrap();
    assert_eq!(out.corrected[[4, 5, 6]], 0.0);

    let flat = Array3::<f32>::from_elem((8, 8, 8), 3.0);
    assert!(matches!(
        n4(flat.view(), mask.view(), sp, &p),
        Err(N4Error::ConstantImage { .. })
    ));

    let empty = Array3::from_elem((8, 8, 8), false);
    assert_eq!(
        n4(img.view(), empty.view(), sp, &p).unwrap_err(),
        N4Error::EmptyMask { shrunk: false }
    );

    for bad in [
        N4Params {
            iterations: vec![],
            ..p.clone()
        },
        N4Params {
            control_points: 3,
            ..p.clone()
        },
        N4Params {
            shrink: 0,
            ..p.clone()
        },
        N4Params {
            bins: 1,
            ..p.clone()
        },
    ] {
        assert!(matches!(
            n4(img.view(), mask.view(), sp, &bad),
            Err(N4Error::InvalidParam(_))
        ));
    }
    assert!(matches!(
        n4(img.view(), mask.view(), [0.0, 1.0, 1.0], &p),
        Err(N4Error::InvalidParam(_))
    ));
}

#[test]
fn params_deserialise_with_defaults() {
    let p: N4Params = serde_json::from_str(r#"{"shrink": 2, "iterations": [10, 5]}"#).unwrap();
    assert_eq!(
        p,
        N4Params {
            shrink: 2,
            iterations: vec![10, 5],
            ..N4Params::default()
        }
    );
    assert_eq!(N4Params::default().iterations, vec![50; 4]);
    assert!(serde_json::from_str::<N4Params>(r#"{"shrinkk": 2}"#).is_err());
}
