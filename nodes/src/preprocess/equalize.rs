//! `equalize`: per-slice histogram equalisation.

use ndarray::{Array2, ArrayView2};
use serde::Deserialize;
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::{min_max, SliceData, StreamType};
use voxflow_runtime::{BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeParams, Slice, TypedKind};

pub struct Equalize;

const DOCS: &str = r#"
Definition, per slice: the histogram has `bins` equal-width bins over `[lo, hi]`, the value range
declared upstream (e.g. the window of `hu_window`) or else the slice's own min..max. Every pixel
is counted (values outside `[lo, hi]` fall in the first or last bin). With bin edges
`e_b = lo + b (hi - lo) / bins` and `C_b` = fraction of pixels in bins `< b` (so `C_0 = 0`,
`C_bins = 1`), a value `v` in bin `b` maps to `C_b + (v - e_b) / (e_{b+1} - e_b) * (C_{b+1} - C_b)`:
the empirical CDF, linear between bin edges, in [0, 1]. Values below `lo` map to 0, above `hi`
to 1. A slice with an empty range (`lo == hi`) maps to 0. This is saratan's `histeq_processor`
(256 bins, linear interpolation of the CDF) made exact at the bin edges.
"#;

/// Params of `equalize`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct EqualizeParams {
    /// histogram bins
    #[param(default = 256, min = 2, max = 65536)]
    pub bins: usize,
}

impl TypedKind for Equalize {
    type Params = EqualizeParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new("equalize", "Per-slice histogram equalisation to [0, 1]")
            .docs(DOCS)
            .input("in", PortType::Fixed(StreamType::Image), "image")
            .output(
                "out",
                PortType::Fixed(StreamType::Image),
                "equalised image in [0, 1]",
            )
    }

    fn create(&self, p: EqualizeParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(EqualizeNode { bins: p.bins }))
    }
}

/// Equalises one slice over `[lo, hi]` with `bins` bins (see the node docs).
pub fn equalize_slice(a: ArrayView2<f32>, lo: f32, hi: f32, bins: usize) -> Array2<f32> {
    if hi <= lo || a.is_empty() {
        return Array2::zeros(a.dim());
    }
    let scale = bins as f32 / (hi - lo);
    let mut hist = vec![0u64; bins];
    for &v in a {
        let b = (((v - lo) * scale) as isize).clamp(0, bins as isize - 1) as usize;
        hist[b] += 1;
    }
    let n = a.len() as f32;
    let mut cdf = Vec::with_capacity(bins + 1);
    let mut acc = 0u64;
    cdf.push(0.0f32);
    for h in &hist {
        acc += h;
        cdf.push(acc as f32 / n);
    }
    a.mapv(|v| {
        let t = ((v - lo) * scale).clamp(0.0, bins as f32);
        let b = (t as usize).min(bins - 1);
        let f = t - b as f32;
        cdf[b] + f * (cdf[b + 1] - cdf[b])
    })
}

struct EqualizeNode {
    bins: usize,
}

impl Node for EqualizeNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let h_in = ctx.header_of("in", StreamType::Image)?;
        let range = h_in.value_range;
        let mut h = (*h_in).clone();
        h.value_range = Some((0.0, 1.0));
        super::record_step(&mut h, &format!("equalize:{}", self.bins), false);
        ctx.set_total(h.num_slices());
        ctx.send_header("out", h)?;
        while let Some(s) = ctx.next_slice("in")? {
            let img = s.data.image().expect("image stream");
            let (lo, hi) = match range {
                Some((a, b)) => (a as f32, b as f32),
                None => min_max(img.view()).unwrap_or((0.0, 0.0)),
            };
            let mut out = Slice::new(
                s.index,
                SliceData::Image(equalize_slice(img.view(), lo, hi, self.bins)),
            );
            out.meta = s.meta.clone();
            ctx.send_slice("out", out)?;
            ctx.tick();
        }
        ctx.end("out")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn hand_computed_cdf() {
        // 4 pixels over [0, 4) with 4 bins: one pixel per bin.
        let a = array![[0.0f32, 1.0], [2.0, 3.0]];
        let e = equalize_slice(a.view(), 0.0, 4.0, 4);
        // v = 0 sits on edge e_0 -> C_0 = 0; v = 1 on e_1 -> 0.25; ...
        assert_eq!(e, array![[0.0, 0.25], [0.5, 0.75]]);
        // Halfway through bin 1 (v = 1.5): 0.25 + 0.5 * 0.25.
        let e2 = equalize_slice(array![[1.5f32, 0.0], [2.0, 3.0]].view(), 0.0, 4.0, 4);
        assert!((e2[[0, 0]] - 0.375).abs() < 1e-6);
        // Above the range -> 1.
        let e3 = equalize_slice(array![[9.0f32, 0.0]].view(), 0.0, 4.0, 4);
        assert_eq!(e3[[0, 0]], 1.0);
    }

    #[test]
    fn monotone_and_bounded() {
        let a = Array2::from_shape_fn((32, 32), |(j, i)| ((j * 7 + i * 13) % 97) as f32);
        let e = equalize_slice(a.view(), 0.0, 97.0, 16);
        for (x, y) in a.iter().zip(e.iter()) {
            for (x2, y2) in a.iter().zip(e.iter()) {
                if x < x2 {
                    assert!(y <= y2);
                }
            }
            assert!((0.0..=1.0).contains(y));
        }
    }
}
