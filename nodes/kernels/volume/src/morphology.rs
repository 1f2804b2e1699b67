//! Per-slice morphological closing (the liver mask's `close_mm` in the CT cascade).

use ndarray::{Array3, Axis};

/// Per-slice morphological closing (dilation then erosion) with a disk of radius `r_mm`,
/// in mm with the in-plane `spacing` `[dj, di]`; the result contains the mask and a slice
/// without liver stays empty. Exact Euclidean distances, computed on each slice's bounding box
/// grown by the radius (plus one pixel). Outside the slice counts as dilated, so the erosion
/// does not eat in from the slice border.
pub fn close_slices(m: &Array3<bool>, spacing: [f64; 2], r_mm: f64) -> Array3<bool> {
    let (_, nj, ni) = m.dim();
    let r2 = r_mm * r_mm;
    let pad = [
        (r_mm / spacing[0]).ceil() as usize + 1,
        (r_mm / spacing[1]).ceil() as usize + 1,
    ];
    let sp = [1.0, spacing[0], spacing[1]];
    let mut out = m.clone();
    for (mk, mut ok) in m.axis_iter(Axis(0)).zip(out.axis_iter_mut(Axis(0))) {
        let (mut j0, mut j1, mut i0, mut i1) = (usize::MAX, 0, usize::MAX, 0);
        for ((j, i), &x) in mk.indexed_iter() {
            if x {
                (j0, j1, i0, i1) = (j0.min(j), j1.max(j + 1), i0.min(i), i1.max(i + 1));
            }
        }
        if j0 == usize::MAX {
            continue;
        }
        // The grown box, with a virtual margin beyond the slice edge where needed.
        let (gj0, gi0) = (j0 as isize - pad[0] as isize, i0 as isize - pad[1] as isize);
        let (h, w) = (j1 - j0 + 2 * pad[0], i1 - i0 + 2 * pad[1]);
        let inside = |j: usize, i: usize| {
            let (y, x) = (gj0 + j as isize, gi0 + i as isize);
            (y >= 0 && x >= 0 && (y as usize) < nj && (x as usize) < ni)
                .then_some((y as usize, x as usize))
        };
        let mut local = Array3::from_elem((1, h, w), false);
        for ((_, j, i), v) in local.indexed_iter_mut() {
            *v = inside(j, i).is_some_and(|(y, x)| mk[[y, x]]);
        }
        let dilated = crate::edt_squared(local.view(), sp).mapv(|d| d <= r2);
        // Outside the slice counts as dilated: only in-slice undilated pixels erode.
        let mut background = Array3::from_elem((1, h, w), false);
        for ((_, j, i), v) in background.indexed_iter_mut() {
            *v = inside(j, i).is_some() && !dilated[[0, j, i]];
        }
        let eroded = crate::edt_squared(background.view(), sp);
        for ((_, j, i), &d) in eroded.indexed_iter() {
            if d > r2 {
                if let Some((y, x)) = inside(j, i) {
                    ok[[y, x]] = true;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 41x41 disk of radius 15 px with a bite 5 px wide cut in from its right edge, on
    /// slice 1 of 3.
    fn bitten_disk() -> Array3<bool> {
        let mut m = Array3::from_elem((3, 41, 41), false);
        for j in 0..41 {
            for i in 0..41 {
                let (y, x) = (j as f64 - 20.0, i as f64 - 20.0);
                let bite = (18..=22).contains(&j) && i >= 26;
                m[[1, j, i]] = y * y + x * x <= 225.0 && !bite;
            }
        }
        m
    }

    #[test]
    fn closing_fills_a_bite_wider_than_nothing_narrower_than_the_disk() {
        let m = bitten_disk();
        // 1 mm pixels: the bite is 5 px = 5 mm wide, so a 3 mm disk closes it.
        let c = close_slices(&m, [1.0, 1.0], 3.0);
        assert!(c[[1, 20, 30]], "bite not filled");
        assert!(
            m.iter().zip(c.iter()).all(|(&a, &b)| !a || b),
            "closing lost mask voxels"
        );
        assert!(
            c.index_axis(Axis(0), 0).iter().all(|&x| !x),
            "empty slice gained voxels"
        );
        assert!(
            c.index_axis(Axis(0), 2).iter().all(|&x| !x),
            "empty slice gained voxels"
        );
        // Far from the bite nothing is added.
        assert!(!c[[1, 0, 0]] && !c[[1, 40, 40]]);
        // A 1 mm disk cannot bridge a 5 mm gap.
        let thin = close_slices(&m, [1.0, 1.0], 1.0);
        assert!(!thin[[1, 20, 30]], "1 mm closing filled a 5 mm bite");
    }

    #[test]
    fn closing_radius_is_in_millimetres() {
        let m = bitten_disk();
        // 0.5 mm rows: the bite is 2.5 mm tall, so a 1.5 mm disk closes it, which in 1 mm
        // pixels (5 mm bite) it does not.
        assert!(close_slices(&m, [0.5, 1.0], 1.5)[[1, 20, 30]]);
        assert!(!close_slices(&m, [1.0, 1.0], 1.5)[[1, 20, 30]]);
    }
}
