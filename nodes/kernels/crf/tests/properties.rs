//! Properties of the CRF: zero weights, energy decrease, anisotropic spacing.

use ndarray::{Array3, Array4};
use voxflow_crf::{argmax_labels, dense_crf, mean_field_energy, CrfParams};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32) / (1u64 << 24) as f32
    }
}

/// Noisy 3-class volume: two nested boxes, image with matching intensities.
fn noisy_volume(shape: (usize, usize, usize), seed: u64) -> (Array3<f32>, Array4<f32>) {
    let (nk, nj, ni) = shape;
    let mut rng = Rng(seed);
    let mut image = Array3::<f32>::zeros(shape);
    let mut prob = Array4::<f32>::zeros((nk, nj, ni, 3));
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let inner = |a: usize, n: usize, m: usize| a >= n / m && a < n - n / m;
                let t = if inner(k, nk, 3) && inner(j, nj, 3) && inner(i, ni, 3) {
                    2
                } else if inner(k, nk, 6) && inner(j, nj, 6) && inner(i, ni, 6) {
                    1
                } else {
                    0
                };
                image[[k, j, i]] = [-50.0, 60.0, 20.0][t] + 30.0 * (rng.next() - 0.5);
                let mut l = [0f32; 3];
                for (c, lc) in l.iter_mut().enumerate() {
                    *lc = 3.0 * (rng.next() - 0.5) * 2.0 + if c == t { 2.0 } else { 0.0 };
                }
                let m = l.iter().copied().fold(f32::MIN, f32::max);
                let s: f32 = l.iter().map(|x| (x - m).exp()).sum();
                for c in 0..3 {
                    prob[[k, j, i, c]] = (l[c] - m).exp() / s;
                }
            }
        }
    }
    (image, prob)
}

#[test]
fn zero_pairwise_weights_return_unary_argmax() {
    let (image, prob) = noisy_volume((10, 14, 12), 7);
    let params = CrfParams {
        w_pos: 0.0,
        w_bil: 0.0,
        iterations: 5,
        ..Default::default()
    };
    let q = dense_crf(image.view(), prob.view(), [2.0, 0.8, 0.8], &params);
    assert_eq!(argmax_labels(q.view()), argmax_labels(prob.view()));
    // Q = softmax(ln p) = p (already normalised)
    for (a, b) in q.iter().zip(prob.iter()) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    // and the default weights do change labels on this input (test is not vacuous)
    let q2 = dense_crf(
        image.view(),
        prob.view(),
        [2.0, 0.8, 0.8],
        &CrfParams::default(),
    );
    let changed = argmax_labels(q2.view())
        .iter()
        .zip(argmax_labels(prob.view()).iter())
        .filter(|(a, b)| a != b)
        .count();
    assert!(changed > 100, "CRF changed only {changed} labels");
}

#[test]
fn energy_decreases_over_iterations() {
    let (image, prob) = noisy_volume((12, 20, 18), 11);
    let sp = [2.0, 0.8, 0.8];
    for base in [
        CrfParams::default(),
        CrfParams {
            w_pos: 3.0,
            sigma_pos_mm: 1.0,
            w_bil: 5.0,
            sigma_bil_mm: 10.0,
            sigma_int: 20.0,
            iterations: 0,
        },
    ] {
        let mut energies = Vec::new();
        for it in 0..=8 {
            let p = CrfParams {
                iterations: it,
                ..base.clone()
            };
            let q = dense_crf(image.view(), prob.view(), sp, &p);
            energies.push(mean_field_energy(
                image.view(),
                prob.view(),
                q.view(),
                sp,
                &p,
            ));
        }
        eprintln!("energies {energies:?}");
        let scale = energies[0].abs();
        for w in energies.windows(2) {
            assert!(
                w[1] <= w[0] + 1e-6 * scale,
                "energy increased: {energies:?}"
            );
        }
        assert!(
            energies[8] < energies[0] - 1e-2 * scale,
            "energy barely moved: {energies:?}"
        );
    }
}

/// Radius (mm) of the labelled region along each axis from its second
/// moments (a ball of radius R has variance R^2 / 5 along every axis), and
/// the region's volume in mm^3.
fn radii(lab: &Array3<u8>, sp: [f64; 3]) -> ([f64; 3], f64) {
    let mut n = 0f64;
    let mut s = [0f64; 3];
    let mut s2 = [0f64; 3];
    for ((k, j, i), &l) in lab.indexed_iter() {
        if l == 1 {
            n += 1.0;
            for (a, x) in [k, j, i].into_iter().enumerate() {
                let x = x as f64 * sp[a];
                s[a] += x;
                s2[a] += x * x;
            }
        }
    }
    let r = [0, 1, 2].map(|a| (5.0 * (s2[a] / n - (s[a] / n).powi(2))).sqrt());
    (r, n * sp[0] * sp[1] * sp[2])
}

/// A noisy ball of radius 16 mm on a 2.5 x 0.8 x 0.8 mm grid, constant image
/// (only the spatial terms act) and strong smoothing: the CRF result must be
/// a ball with equal radii in mm along the three axes (within 0.5 mm), i.e.
/// smoothing is isotropic in mm. Ignoring the spacing (1 mm voxels) makes the
/// kernels 3x longer in mm along k and breaks this (checked below).
#[test]
fn sphere_in_mm_stays_a_sphere_with_anisotropic_spacing() {
    let sp = [2.5, 0.8, 0.8];
    let (nk, nj, ni) = (20, 60, 60);
    let c = [
        (nk as f64 - 1.0) / 2.0 * sp[0],
        (nj as f64 - 1.0) / 2.0 * sp[1],
        (ni as f64 - 1.0) / 2.0 * sp[2],
    ];
    let r0 = 16.0;
    let mut rng = Rng(3);
    let image = Array3::<f32>::from_elem((nk, nj, ni), 50.0);
    let mut prob = Array4::<f32>::zeros((nk, nj, ni, 2));
    let mut truth = Array3::<u8>::zeros((nk, nj, ni));
    for ((k, j, i), t) in truth.indexed_iter_mut() {
        let d2 = (k as f64 * sp[0] - c[0]).powi(2)
            + (j as f64 * sp[1] - c[1]).powi(2)
            + (i as f64 * sp[2] - c[2]).powi(2);
        *t = (d2 <= r0 * r0) as u8;
        let p = if *t == 1 { 0.7 } else { 0.3 } + 0.6 * (rng.next() - 0.5);
        prob[[k, j, i, 1]] = p;
        prob[[k, j, i, 0]] = 1.0 - p;
    }
    let params = CrfParams {
        w_pos: 3.0,
        sigma_pos_mm: 2.0,
        w_bil: 2.0,
        sigma_bil_mm: 4.0,
        sigma_int: 39.0,
        iterations: 10,
    };
    let noisy = argmax_labels(prob.view());
    let lab = argmax_labels(dense_crf(image.view(), prob.view(), sp, &params).view());
    let dice = |a: &Array3<u8>| {
        let inter = a
            .iter()
            .zip(truth.iter())
            .filter(|(x, y)| **x == 1 && **y == 1)
            .count() as f64;
        2.0 * inter
            / (a.iter().filter(|x| **x == 1).count() + truth.iter().filter(|x| **x == 1).count())
                as f64
    };
    let (r, vol) = radii(&lab, sp);
    let (rt, _) = radii(&truth, sp);
    eprintln!(
        "dice noisy {:.4} crf {:.4}; radii {r:?} truth {rt:?} vol {vol:.0}",
        dice(&noisy),
        dice(&lab)
    );
    assert!(dice(&noisy) < 0.7, "input not noisy enough");
    assert!(
        dice(&lab) > 0.9,
        "CRF did not recover the ball: dice {}",
        dice(&lab)
    );
    for a in 0..3 {
        for b in 0..3 {
            assert!((r[a] - r[b]).abs() < 0.5, "radii differ: {r:?}");
        }
    }
    // same data, spacing ignored: anisotropic in mm
    let lab_vox =
        argmax_labels(dense_crf(image.view(), prob.view(), [1.0, 1.0, 1.0], &params).view());
    let (rv, _) = radii(&lab_vox, sp);
    eprintln!("spacing ignored: radii {rv:?}");
    assert!(
        (rv[0] - rv[2]).abs() > 1.0,
        "spacing-blind run should be anisotropic: {rv:?}"
    );
}

/// Degenerate shapes (single voxel, single row/column, empty) run and return
/// normalised marginals of the right shape.
#[test]
fn degenerate_shapes() {
    for shape in [(1, 1, 1), (5, 1, 7), (1, 6, 1), (3, 4, 1), (0, 3, 3)] {
        let (image, prob) = noisy_volume(shape, 1);
        let q = dense_crf(
            image.view(),
            prob.view(),
            [2.0, 0.8, 0.7],
            &CrfParams::default(),
        );
        assert_eq!(q.dim(), prob.dim());
        for v in q.as_slice().unwrap().chunks(3) {
            let s: f32 = v.iter().sum();
            assert!(
                v.iter().all(|x| x.is_finite()) && (s - 1.0).abs() < 1e-5,
                "{shape:?}: {v:?}"
            );
        }
    }
}

/// The bilateral splat takes different paths by lattice size and thread count. Default
/// params (310 vertices, 2 z-slabs): fused into the update, with private buffers (2 threads)
/// or serially (1 thread); a separate splat pass (8 threads: too many private buffers).
/// sigma_bil 4 mm (1341 vertices, 3 z-slabs): separate splat passes over even, then odd
/// slabs, in parallel or not. All give the same marginals up to float rounding.
#[test]
fn splat_paths_agree() {
    let (image, prob) = noisy_volume((24, 20, 18), 5);
    for params in [
        CrfParams::default(),
        CrfParams {
            sigma_bil_mm: 4.0,
            ..Default::default()
        },
    ] {
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| dense_crf(image.view(), prob.view(), [2.5, 0.8, 0.8], &params))
        };
        let q1 = run(1);
        let changed = argmax_labels(q1.view())
            .iter()
            .zip(argmax_labels(prob.view()).iter())
            .filter(|(a, b)| a != b)
            .count();
        assert!(changed > 100, "CRF changed only {changed} labels");
        for t in [2, 8] {
            let qt = run(t);
            let d = q1
                .iter()
                .zip(qt.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!("{t} threads: max Q difference {d}");
            assert!(d < 1e-5, "{t} threads: Q differs from 1 thread by {d}");
        }
    }
}
