//! Hand-computable cases: values derived on paper, not by another implementation.

use ndarray::{s, Array3};
use serde_json::json;
use voxflow_metrics::{binary_metrics, detection, Undefined};

fn cube(shape: (usize, usize, usize), lo: [usize; 3], n: usize) -> Array3<bool> {
    let mut m = Array3::from_elem(shape, false);
    m.slice_mut(s![lo[0]..lo[0] + n, lo[1]..lo[1] + n, lo[2]..lo[2] + n])
        .fill(true);
    m
}

fn approx(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
}

/// Two 3x3x3 cubes D voxels apart along one axis with step w (mm): every surface voxel's
/// nearest opposite surface voxel is straight across on the facing face, so the 26 surface
/// voxels per cube are at distances D·w (9), (D−1)·w (8, the middle layer minus its centre)
/// and (D−2)·w (9): ASD = (D−1)·w, MSD = D·w, and HD95 (position 0.95·51 = 48.45 of 52
/// sorted values, the last 18 of which equal D·w) = D·w.
#[test]
fn two_cubes_known_distance_each_axis_anisotropic() {
    let sp = [2.5, 0.5, 0.8];
    let d = 5;
    for axis in 0..3 {
        let mut lo = [2, 2, 2];
        let t = cube((14, 14, 14), lo, 3);
        lo[axis] += d;
        let p = cube((14, 14, 14), lo, 3);
        let m = binary_metrics(p.view(), t.view(), sp);
        let w = sp[axis];
        approx(m.asd_mm.unwrap(), (d as f64 - 1.0) * w);
        approx(m.msd_mm.unwrap(), d as f64 * w);
        approx(m.hd95_mm.unwrap(), d as f64 * w);
        assert_eq!((m.pred_surface_voxels, m.truth_surface_voxels), (26, 26));
        assert_eq!((m.dice, m.voe, m.rvd), (Ok(0.0), Ok(1.0), Ok(0.0)));
    }
}

#[test]
fn single_voxels_diagonal_distance() {
    let mut t = Array3::from_elem((5, 6, 4), false);
    let mut p = t.clone();
    t[[0, 0, 0]] = true;
    p[[3, 4, 0]] = true;
    // sqrt((3*2)^2 + (4*0.5)^2) = sqrt(40)
    let m = binary_metrics(p.view(), t.view(), [2.0, 0.5, 1.0]);
    for v in [m.asd_mm, m.msd_mm, m.hd95_mm] {
        approx(v.unwrap(), 40f64.sqrt());
    }
}

/// A mask filling the whole array has surface voxels on the array border (outside counts
/// as background): 3x3x3 full -> 26 surface voxels, only the centre is interior.
#[test]
fn object_filling_the_array_has_border_surface() {
    let sp = [2.0, 0.5, 1.0];
    let t = Array3::from_elem((3, 3, 3), true);
    let m = binary_metrics(t.view(), t.view(), sp);
    assert_eq!(m.truth_surface_voxels, 26);
    assert_eq!(
        (m.dice, m.voe, m.asd_mm, m.msd_mm),
        (Ok(1.0), Ok(0.0), Ok(0.0), Ok(0.0))
    );

    // pred = centre voxel only: pred->truth distance is the smallest step (0.5); the 26
    // truth surface voxels are at their offset length from the centre.
    let mut p = Array3::from_elem((3, 3, 3), false);
    p[[1, 1, 1]] = true;
    let mut sum = 0.5;
    let mut max: f64 = 0.5;
    for a in -1i32..=1 {
        for b in -1i32..=1 {
            for c in -1i32..=1 {
                if (a, b, c) != (0, 0, 0) {
                    let d = ((a as f64 * sp[0]).powi(2)
                        + (b as f64 * sp[1]).powi(2)
                        + (c as f64 * sp[2]).powi(2))
                    .sqrt();
                    sum += d;
                    max = max.max(d);
                }
            }
        }
    }
    let m = binary_metrics(p.view(), t.view(), sp);
    approx(m.asd_mm.unwrap(), sum / 27.0);
    approx(m.msd_mm.unwrap(), max);
    approx(m.rvd.unwrap(), (1.0 - 27.0) / 27.0);
    approx(m.dice.unwrap(), 2.0 / 28.0);
    // Thin slab: every voxel is surface.
    let slab = Array3::from_elem((1, 5, 5), true);
    assert_eq!(
        binary_metrics(slab.view(), slab.view(), sp).pred_surface_voxels,
        25
    );
}

#[test]
fn empty_masks_are_explicit() {
    let e = Array3::from_elem((4, 4, 4), false);
    let c = cube((4, 4, 4), [1, 1, 1], 2);

    let m = binary_metrics(e.view(), c.view(), [1.0; 3]);
    assert_eq!((m.dice, m.voe, m.rvd), (Ok(0.0), Ok(1.0), Ok(-1.0)));
    assert_eq!(m.asd_mm, Err(Undefined::PredEmpty));
    let j = m.to_json();
    assert_eq!(j["asd_mm"], json!(null));
    assert_eq!(j["asd_mm_note"], json!("pred empty"));
    assert_eq!(j["hd95_mm_note"], json!("pred empty"));
    assert_eq!(j["rvd"], json!(-1.0));
    assert!(j.get("rvd_note").is_none() && j.get("dice_note").is_none());

    let m = binary_metrics(c.view(), e.view(), [1.0; 3]);
    assert_eq!((m.dice, m.voe), (Ok(0.0), Ok(1.0)));
    assert_eq!(
        (m.rvd, m.msd_mm),
        (Err(Undefined::TruthEmpty), Err(Undefined::TruthEmpty))
    );
    assert_eq!(m.to_json()["rvd_note"], json!("truth empty"));

    let m = binary_metrics(e.view(), e.view(), [1.0; 3]);
    let j = m.to_json();
    assert_eq!(
        (j["dice"].clone(), j["voe"].clone()),
        (json!(1.0), json!(0.0))
    );
    for k in ["rvd", "asd_mm", "msd_mm", "hd95_mm"] {
        assert_eq!(j[k], json!(null));
        assert_eq!(j[format!("{k}_note")], json!("both empty"));
    }
}

#[test]
fn strided_views_give_the_same_result() {
    let t = cube((9, 10, 11), [1, 2, 3], 4);
    let p = cube((9, 10, 11), [2, 2, 5], 4);
    let sp = [2.0, 0.7, 0.9];
    let a = binary_metrics(p.view(), t.view(), sp);
    // Reversed axes (non-standard layout) with reversed spacing: same geometry.
    let b = binary_metrics(p.t(), t.t(), [sp[2], sp[1], sp[0]]);
    for (x, y) in [
        (a.asd_mm, b.asd_mm),
        (a.msd_mm, b.msd_mm),
        (a.hd95_mm, b.hd95_mm),
        (a.dice, b.dice),
    ] {
        approx(x.unwrap(), y.unwrap());
    }
}

#[test]
fn detection_rule() {
    let shape = (10, 10, 10);
    let mut t = cube(shape, [0, 0, 0], 2); // lesion 1, detected
    t.slice_mut(s![6..8, 6..8, 6..8]).fill(true); // lesion 2, missed
    let mut p = Array3::from_elem(shape, false);
    p[[1, 1, 1]] = true; // one voxel of lesion 1
    p[[2, 2, 2]] = true; // 26-connected to [1,1,1]: same component, not a FP
    p[[0, 9, 9]] = true; // FP
    p[[9, 0, 0]] = true; // FP
    let d = detection(p.view(), t.view(), [2.0, 1.0, 1.0]);
    assert_eq!((d.true_positive, d.missed, d.false_positive), (1, 1, 2));
    assert_eq!((d.truth_lesions, d.pred_lesions), (2, 3));
    assert_eq!(d.lesions[0].overlap_voxels, 1);
    assert_eq!(d.lesions[1].voxels, 8);
    approx(d.lesions[1].volume_mm3, 16.0);
    assert_eq!(d.to_json()["missed"], json!(1));
}

#[test]
fn sized_detection_counts_as_issue_17() {
    // 1 mL voxels (10 mm cubes), the case of training/tests/test_lesion_detection.py: truth
    // lesions of 8 and 1 voxels; predicted: 4 voxels in the big lesion plus one voxel touching
    // them by a corner (one 26-connected component of 5), a false island of 2, a false voxel.
    let mut t = Array3::from_elem((6, 6, 6), false);
    t.slice_mut(s![0..2, 0..2, 0..2]).fill(true);
    t[[5, 5, 5]] = true;
    let mut p = Array3::from_elem((6, 6, 6), false);
    p.slice_mut(s![0..1, 0..2, 0..2]).fill(true);
    p[[1, 2, 2]] = true;
    p.slice_mut(s![3..4, 3..5, 0..1]).fill(true);
    p[[3, 0, 5]] = true;
    let d = detection(p.view(), t.view(), [10.0, 10.0, 10.0]);
    let z = d.sized(1000.0, 500.0);
    assert_eq!(
        (
            z.truth_lesions,
            z.found,
            z.pred_components,
            z.true_components
        ),
        (2, 1, 3, 1)
    );
    // Components of >= 2 mL: the false single voxel no longer counts.
    let z = d.sized(1000.0, 2000.0);
    assert_eq!((z.found, z.pred_components, z.true_components), (1, 2, 1));
    // Only truth lesions of >= 2 mL: the single-voxel lesion does not count.
    let z = d.sized(2000.0, 500.0);
    assert_eq!((z.truth_lesions, z.found), (1, 1));
    // Nothing of >= 6 mL is predicted.
    let z = d.sized(1000.0, 6000.0);
    assert_eq!((z.found, z.pred_components, z.true_components), (0, 0, 0));
    assert_eq!(d.to_json()["sized"]["found"], json!(1));
}
