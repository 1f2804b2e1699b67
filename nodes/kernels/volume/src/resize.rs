//! Slice resampling (the fcn node, the cascade crops) with the pixel-centre convention (`align_corners = false`).
//!
//! Output pixel `d` of an axis resized from `n_in` to `n_out` samples the input at
//! `src = (d + 0.5) * n_in / n_out - 0.5` (pixel centres at integer coordinates, the image
//! covering `[-0.5, n - 0.5]`). This is PyTorch `interpolate(mode="bilinear",
//! align_corners=False, antialias=False)` and OpenCV `INTER_LINEAR`; no antialiasing when
//! shrinking. Resizing to the same size returns the input exactly.

use ndarray::{Array2, ArrayView2};

/// Per output index: (lower input index, upper input index, weight of the upper one).
fn linear_taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|d| {
            let src = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(n_in - 1);
            let i1 = (i0 + 1).min(n_in - 1);
            let t = if i1 == i0 {
                0.0
            } else {
                (src - i0 as f64) as f32
            };
            (i0, i1, t)
        })
        .collect()
}

/// Bilinear resize of a 2-D slice `(rows, cols)` to `(out_h, out_w)`, `align_corners = false`
/// (see the module docs); edges clamp. Panics if an input or output size is 0.
pub fn resize_bilinear(slice: ArrayView2<f32>, out_h: usize, out_w: usize) -> Array2<f32> {
    let (h, w) = slice.dim();
    assert!(
        h > 0 && w > 0 && out_h > 0 && out_w > 0,
        "resize_bilinear: empty size"
    );
    if (h, w) == (out_h, out_w) {
        return slice.to_owned();
    }
    let ty = linear_taps(h, out_h);
    let tx = linear_taps(w, out_w);
    // Horizontal pass for every input row, then vertical pass.
    let mut tmp = Array2::<f32>::zeros((h, out_w));
    for (src_row, mut dst_row) in slice.outer_iter().zip(tmp.outer_iter_mut()) {
        for (d, &(x0, x1, t)) in dst_row.iter_mut().zip(&tx) {
            *d = src_row[x0] + t * (src_row[x1] - src_row[x0]);
        }
    }
    let mut out = Array2::<f32>::zeros((out_h, out_w));
    for (mut dst_row, &(y0, y1, t)) in out.outer_iter_mut().zip(&ty) {
        let (a, b) = (tmp.row(y0), tmp.row(y1));
        for ((d, &va), &vb) in dst_row.iter_mut().zip(a).zip(b) {
            *d = va + t * (vb - va);
        }
    }
    out
}

/// Nearest-neighbour source index per output index: `min(floor((d + 0.5) * n_in / n_out), n_in - 1)`.
pub fn nearest_indices(n_in: usize, n_out: usize) -> Vec<usize> {
    (0..n_out)
        .map(|d| (((2 * d + 1) * n_in) / (2 * n_out)).min(n_in - 1))
        .collect()
}

/// Nearest-neighbour resize with the same pixel-centre convention: output pixel `d` takes input
/// `floor((d + 0.5) * n_in / n_out)` in exact integer arithmetic (PyTorch `nearest-exact`;
/// OpenCV `INTER_NEAREST_EXACT` except at exact ties, which its fixed point may round down).
/// For labels and masks. Panics if a size is 0.
pub fn resize_nearest<T: Copy>(slice: ArrayView2<T>, out_h: usize, out_w: usize) -> Array2<T> {
    let (h, w) = slice.dim();
    assert!(
        h > 0 && w > 0 && out_h > 0 && out_w > 0,
        "resize_nearest: empty size"
    );
    let iy = nearest_indices(h, out_h);
    let ix = nearest_indices(w, out_w);
    Array2::from_shape_fn((out_h, out_w), |(y, x)| slice[[iy[y], ix[x]]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array};

    #[test]
    fn bilinear_upscale_by_two() {
        // torch.nn.functional.interpolate([[0, 1]], size=4, mode="linear", align_corners=False)
        // = [0, 0.25, 0.75, 1].
        let x = array![[0.0f32, 1.0]];
        let y = resize_bilinear(x.view(), 1, 4);
        assert_eq!(y, array![[0.0, 0.25, 0.75, 1.0]]);
    }

    #[test]
    fn bilinear_identity_and_constant() {
        let x = Array::from_shape_fn((7, 5), |(i, j)| (i * 5 + j) as f32 * 0.37);
        assert_eq!(resize_bilinear(x.view(), 7, 5), x);
        let c = Array2::from_elem((9, 4), 3.25f32);
        assert!(resize_bilinear(c.view(), 13, 2).iter().all(|&v| v == 3.25));
    }

    #[test]
    fn bilinear_downscale_by_two_averages_pairs() {
        let x = array![[0.0f32, 2.0, 4.0, 6.0]];
        assert_eq!(resize_bilinear(x.view(), 1, 2), array![[1.0, 5.0]]);
    }

    #[test]
    fn nearest_convention() {
        assert_eq!(nearest_indices(4, 2), vec![1, 3]);
        assert_eq!(nearest_indices(2, 4), vec![0, 0, 1, 1]);
        assert_eq!(nearest_indices(3, 3), vec![0, 1, 2]);
        let x = array![[1u8, 2, 3], [4, 5, 6]];
        assert_eq!(resize_nearest(x.view(), 2, 3), x);
        assert_eq!(
            resize_nearest(x.view(), 4, 6).row(3).to_vec(),
            vec![4, 4, 5, 5, 6, 6]
        );
    }
}
