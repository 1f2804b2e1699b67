//! `paste_back`: lesion probabilities on liver crops -> 3-class probabilities on full slices.

use super::crop_resample::Roi;
use super::liver::{class_channel, LiverSlices, MaskSpec, META_CLASSES, META_FULL_SLICE, META_ROI};
use ndarray::{s, Array2, Array3, ArrayView2, Axis};
use serde::Deserialize;
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::{SliceData, StreamType};
use voxflow_runtime::{
    BuildEnv, Meta, Node, NodeCtx, NodeDecl, NodeError, NodeParams, Slice, TypedKind,
};
use voxflow_volume::resize_bilinear;

pub struct PasteBack;

const DOCS: &str = r#"
Step 3 of the cascade: maps the lesion model's probabilities on the liver crops back into the
full slices and combines them with the liver result into one 3-class `prob` stream with classes
`background, liver, lesion`.

- The liver mask is computed from `liver` exactly as `crop_resample` does (same `threshold`,
  `largest_component`, `channel`, `close_mm` params and defaults; set them the same in both
  nodes). Voxels the closing adds count as liver (or lesion) like the rest of the mask.
- Each lesion slice must carry the `roi` box of `crop_resample`; its lesion channel (class
  `lesion`, or `lesion_channel`) is resized (bilinear) to the box size and placed in the box.
- Inside the liver mask the liver decision is final: `(0, 1 - q', q')` with `q'` the lesion
  probability `q` recalibrated so that `lesion_threshold` (t) maps to 0.5, linearly on each side
  (`q' = q / 2t` up to t, `0.5 + (q - t) / 2(1 - t)` above), so `argmax` gives lesion where
  `q > t` and liver otherwise. With the default t = 0.5, `q' = q`. A CRF downstream sees `q'`.
- Outside the mask lesion is 0: `(1 - p, p, 0)` with `p` the liver probability where
  `p <= min(threshold, 0.5)`, else `(1, 0, 0)` (voxels dropped by the component filter or the
  threshold), so `argmax` is background everywhere outside the mask.
- A slice whose mask has liver but no lesion crop (or the reverse) is an error: the two nodes
  disagree about the mask.
"#;

/// Params of `paste_back`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct PasteParams {
    /// lesion channel of the lesion input
    pub lesion_channel: Option<usize>,
    /// lesion probability above which a liver voxel is lesion (after `argmax`)
    #[param(default = 0.5, gt = 0.0, lt = 1.0)]
    pub lesion_threshold: f32,
    #[serde(flatten)]
    #[param(flatten)]
    pub mask: MaskSpec,
}

impl TypedKind for PasteBack {
    type Params = PasteParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            "paste_back",
            "Map lesion probabilities from liver crops back; combine to background/liver/lesion",
        )
        .docs(DOCS)
        .input(
            "liver",
            PortType::Any,
            "liver probabilities (prob, full slices) or a liver label",
        )
        .input(
            "lesion",
            PortType::Fixed(StreamType::Prob),
            "lesion probabilities on the crops of `crop_resample`",
        )
        .output(
            "prob",
            PortType::Fixed(StreamType::Prob),
            "3 classes: background, liver, lesion",
        )
    }

    fn create(&self, p: PasteParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(PasteBackNode {
            mask: p.mask,
            lesion_channel: p.lesion_channel,
            lesion_threshold: p.lesion_threshold,
        }))
    }
}

struct PasteBackNode {
    mask: MaskSpec,
    lesion_channel: Option<usize>,
    lesion_threshold: f32,
}

/// The `roi` of a slice's metadata, checked against the slice size `(nj, ni)`.
pub fn roi_of(meta: &Meta, nj: usize, ni: usize) -> Result<Roi, String> {
    let v = meta
        .get(META_ROI)
        .ok_or("has no `roi` metadata; connect the output of crop_resample (through fcn)")?;
    let r: Vec<usize> = v
        .as_array()
        .and_then(|a| a.iter().map(|x| x.as_u64().map(|u| u as usize)).collect())
        .filter(|r: &Vec<usize>| r.len() == 4)
        .ok_or_else(|| format!("`roi` {v} is not [j0, j1, i0, i1]"))?;
    if !(r[0] < r[1] && r[1] <= nj && r[2] < r[3] && r[3] <= ni) {
        return Err(format!(
            "`roi` {r:?} does not lie inside the {nj}x{ni} slice"
        ));
    }
    Ok([r[0], r[1], r[2], r[3]])
}

/// Resizes a crop's lesion probabilities to the box and places them in a full slice of zeros.
pub fn paste(lesion: ArrayView2<f32>, roi: Roi, nj: usize, ni: usize) -> Array2<f32> {
    let [j0, j1, i0, i1] = roi;
    let mut q = Array2::zeros((nj, ni));
    q.slice_mut(s![j0..j1, i0..i1])
        .assign(&resize_bilinear(lesion, j1 - j0, i1 - i0));
    q
}

/// Lesion probability `q` recalibrated so that `t` maps to 0.5, linearly on each side.
pub fn recalibrate(q: f32, t: f32) -> f32 {
    if q <= t {
        q / (2.0 * t)
    } else {
        0.5 + (q - t) / (2.0 * (1.0 - t))
    }
}

/// Combines liver probability `p`, liver mask `m` and lesion probability `q` of one slice
/// into `(3, nj, ni)` (see the node docs); `threshold` is the liver mask's, `lesion_threshold`
/// the lesion's.
pub fn combine(
    p: ArrayView2<f32>,
    m: ArrayView2<bool>,
    q: ArrayView2<f32>,
    threshold: f32,
    lesion_threshold: f32,
) -> Array3<f32> {
    let (nj, ni) = p.dim();
    let keep = threshold.min(0.5);
    let mut out = Array3::zeros((3, nj, ni));
    for j in 0..nj {
        for i in 0..ni {
            let (bg, lv, ls) = if m[[j, i]] {
                let q = recalibrate(q[[j, i]].clamp(0.0, 1.0), lesion_threshold);
                (0.0, 1.0 - q, q)
            } else {
                let p = p[[j, i]].clamp(0.0, 1.0);
                if p <= keep {
                    (1.0 - p, p, 0.0)
                } else {
                    (1.0, 0.0, 0.0)
                }
            };
            out[[0, j, i]] = bg;
            out[[1, j, i]] = lv;
            out[[2, j, i]] = ls;
        }
    }
    out
}

impl Node for PasteBackNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        // Of the liver stream only its liver channel and the thresholded mask are kept (see
        // `LiverSlices`).
        let mut zip = ctx.zip(&["liver", "lesion"])?;
        let (liver_h, lesion_h) = (zip.header(0).clone(), zip.header(1).clone());
        let [nk, nj, ni] = liver_h.shape;
        let mut liver = LiverSlices::new(&liver_h, &self.mask, "liver", true)?;
        let full = lesion_h
            .meta
            .get(META_FULL_SLICE)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_u64().map(|u| u as usize))
                    .collect::<Vec<_>>()
            });
        match full {
            None => {
                return Err(NodeError::msg(
                    "input `lesion` has no `full_slice` metadata; it must come from crop_resample (through fcn)",
                ))
            }
            Some(f) if f != [nj, ni] || lesion_h.shape[0] != nk => {
                return Err(NodeError::msg(format!(
                    "input `lesion` was cut from {} slices of {f:?} but `liver` has {nk} slices of [{nj}, {ni}]",
                    lesion_h.shape[0]
                )))
            }
            Some(_) => {}
        }
        let lch = class_channel(&lesion_h, "lesion", self.lesion_channel, "lesion")?;
        // The liver stream whole first (the mask needs all of it; the lesion crops that come
        // meanwhile wait in the queue), then each slice as soon as its crop has come.
        ctx.drain_input(&mut zip, 0, |s| {
            liver.put(s);
            Ok(())
        })?;
        let liver_meta = liver.slice_meta().to_vec();
        let (p, m) = liver.finish(&self.mask, [liver_h.spacing[1], liver_h.spacing[2]]);
        let p = p.expect("kept");

        let mut h = liver_h.with_type(StreamType::Prob, 3);
        h.meta.insert(
            META_CLASSES.into(),
            vec!["background", "liver", "lesion"].into(),
        );
        h.meta.remove("model");
        ctx.set_total(nk);
        ctx.send_header("prob", h)?;
        let mut next = 0;
        while let Some(a) = ctx.next_aligned(&mut zip)? {
            let Some(crop) = &a.slices[1] else { continue };
            for k in next..crop.index {
                self.send(ctx, k, None, &p, &m, &liver_meta)?;
            }
            let lp = crop.data.prob().expect("prob stream");
            let q = (lp.index_axis(Axis(0), lch), &crop.meta);
            self.send(ctx, crop.index, Some(q), &p, &m, &liver_meta)?;
            next = crop.index + 1;
        }
        for k in next..nk {
            self.send(ctx, k, None, &p, &m, &liver_meta)?;
        }
        ctx.end("prob")
    }
}

impl PasteBackNode {
    /// Sends output slice `k`, from the lesion crop of slice `k` (its lesion channel and
    /// metadata) if there is one, the liver probability `p`, the mask `m` and the liver slices'
    /// metadata.
    fn send(
        &self,
        ctx: &mut NodeCtx,
        k: usize,
        crop: Option<(ArrayView2<f32>, &Meta)>,
        p: &Array3<f32>,
        m: &Array3<bool>,
        liver_meta: &[Option<Meta>],
    ) -> Result<(), NodeError> {
        let (_, nj, ni) = p.dim();
        let mk = m.index_axis(Axis(0), k);
        let has_liver = mk.iter().any(|&x| x);
        let q = match crop {
            Some((crop, meta)) => {
                let roi =
                    roi_of(meta, nj, ni).map_err(|e| format!("input `lesion`, slice {k}: {e}"))?;
                if !has_liver {
                    return Err(NodeError::msg(format!(
                        "slice {k} has a lesion crop but no liver in the mask; crop_resample and \
                         paste_back must use the same threshold, largest_component and channel"
                    )));
                }
                paste(crop, roi, nj, ni)
            }
            None if has_liver => {
                return Err(NodeError::msg(format!(
                    "slice {k} has liver in the mask but the lesion stream has no crop there; \
                     crop_resample and paste_back must use the same threshold, largest_component and channel"
                )))
            }
            None => Array2::zeros((nj, ni)),
        };
        let out = combine(
            p.index_axis(Axis(0), k),
            mk,
            q.view(),
            self.mask.threshold,
            self.lesion_threshold,
        );
        let mut s = Slice::new(k, SliceData::Prob(out));
        if let Some(meta) = &liver_meta[k] {
            s.meta = meta.clone();
        }
        ctx.send_slice("prob", s)?;
        ctx.tick();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn combine_rules() {
        let p = array![[0.9f32, 0.9, 0.3, 0.7]];
        let m = array![[true, true, false, false]];
        let q = array![[0.8f32, 0.2, 0.9, 0.9]];
        let c = combine(p.view(), m.view(), q.view(), 0.5, 0.5);
        // In the mask: (0, 1-q, q); outside, below threshold: (1-p, p, 0); outside, above: bg.
        let want = [
            [0.0, 0.2, 0.8],
            [0.0, 0.8, 0.2],
            [0.7, 0.3, 0.0],
            [1.0, 0.0, 0.0],
        ];
        for (i, w) in want.iter().enumerate() {
            for ch in 0..3 {
                assert!(
                    (c[[ch, 0, i]] - w[ch]).abs() < 1e-6,
                    "pixel {i} channel {ch}"
                );
            }
        }
    }

    #[test]
    fn lesion_threshold_moves_the_decision_and_keeps_the_order() {
        for t in [0.3f32, 0.5, 0.7, 0.9] {
            assert_eq!(recalibrate(0.0, t), 0.0);
            assert!((recalibrate(t, t) - 0.5).abs() < 1e-6);
            assert!((recalibrate(1.0, t) - 1.0).abs() < 1e-6);
            let qs: Vec<f32> = (0..=100).map(|k| k as f32 / 100.0).collect();
            let r: Vec<f32> = qs.iter().map(|&q| recalibrate(q, t)).collect();
            assert!(r.windows(2).all(|w| w[0] <= w[1]), "t {t}: not monotone");
        }
        assert_eq!(recalibrate(0.37, 0.5), 0.37);
        // In the mask, argmax picks lesion exactly where q > t.
        let p = array![[0.9f32, 0.9, 0.9]];
        let m = array![[true, true, true]];
        let q = array![[0.65f32, 0.7, 0.75]];
        let c = combine(p.view(), m.view(), q.view(), 0.5, 0.7);
        let lesion: Vec<bool> = (0..3).map(|i| c[[2, 0, i]] > c[[1, 0, i]]).collect();
        assert_eq!(lesion, [false, false, true]);
        assert!((c[[1, 0, 0]] + c[[2, 0, 0]] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn paste_at_model_size_is_exact() {
        let crop = Array2::from_shape_fn((4, 6), |(j, i)| (j * 6 + i) as f32);
        let q = paste(crop.view(), [2, 6, 1, 7], 10, 8);
        assert_eq!(q.slice(s![2..6, 1..7]), crop);
        assert_eq!(q.sum(), crop.sum());
        let meta: Meta = [(META_ROI.to_string(), serde_json::json!([2, 6, 1, 7]))].into();
        assert_eq!(roi_of(&meta, 10, 8).unwrap(), [2, 6, 1, 7]);
        assert!(roi_of(&meta, 5, 8).is_err());
        assert!(roi_of(&Meta::new(), 10, 8).is_err());
    }
}
