//! `crop_resample`: cut the liver region out of each slice for the lesion model.

use super::liver::{check_liver_header, LiverSlices, MaskSpec, META_FULL_SLICE, META_ROI};
use ndarray::{s, Array2, ArrayView2};
use serde::Deserialize;
use std::path::PathBuf;
use voxflow_onnx::{ModelInfo, PreprocessStep};
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::{SliceData, StreamType};
use voxflow_runtime::{
    BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeParams, Slice, TypedKind, Volume,
};
use voxflow_volume::resize_bilinear;

pub struct CropResample;

const DOCS: &str = r#"
Step 2 of the cascade (Christ et al. 2017): per slice, the liver region of the image, resampled
to the lesion model's input size.

- Liver mask: `liver` probability > `threshold` (prob stream: the channel of class `liver`, or
  `channel`; label stream: every non-zero voxel is liver), then the largest 26-connected 3D
  component when `largest_component` is on, then, with `close_mm` > 0, each slice's mask closed
  (dilated, then eroded) with a disk of that radius in mm: lesions at the liver's edge that the
  liver model left out (a concavity in its mask) come back inside, at the cost of a few percent
  of extra area.
- Box, per slice with liver: the bounding box of the mask, grown by `margin_mm` on each side
  (converted with the slice spacing, rounded up to whole pixels), widened symmetrically to at
  least `min_box` pixels per side, then shifted (not shrunk) to lie inside the slice; a slice
  smaller than `min_box` gives the whole slice. It always contains the slice's mask.
- Liver level (when `model`'s `voxflow.preprocess` has a `liver_level:V` step): the liver
  pixels are shifted by one offset per volume so that the median of all liver voxels is `V`,
  then clipped to the input's declared value range. Patients whose livers differ in brightness
  (contrast phase) reach the lesion model at the same liver level.
- Crop: image pixels in the box, non-liver pixels set to 0, resized (bilinear,
  `align_corners = false`) to `size` = `[H, W]` or the input size of `model`.
- Output: a sparse image stream with only the slices that have liver. Slices are `H x W`; each
  carries `roi: [j0, j1, i0, i1]` (rows `j0..j1`, columns `i0..i1`, end exclusive, in the full
  slice) and the header carries `full_slice: [nj, ni]`; `paste_back` maps results back with
  them. The header keeps the input's affine, which describes the full slices, not the crops.
"#;

/// Params of `crop_resample`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct CropParams {
    /// minimum box side in pixels
    #[param(default = 60, min = 1)]
    pub min_box: usize,
    /// margin added around the liver, mm
    #[param(default = 0.0, min = 0)]
    pub margin_mm: f64,
    /// crop size [H, W] (or give `model`)
    pub size: Option<Vec<usize>>,
    /// lesion model whose input size (and `liver_level` step) the crops take
    pub model: Option<PathBuf>,
    #[serde(flatten)]
    #[param(flatten)]
    pub mask: MaskSpec,
}

impl TypedKind for CropResample {
    type Params = CropParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            "crop_resample",
            "Crop each slice to the liver box and resample it for the lesion model",
        )
        .docs(DOCS)
        .input(
            "image",
            PortType::Fixed(StreamType::Image),
            "preprocessed image",
        )
        .input(
            "liver",
            PortType::Any,
            "liver probabilities (prob) or a liver label",
        )
        .output(
            "out",
            PortType::Fixed(StreamType::Image),
            "liver crops (sparse), `roi` in slice metadata",
        )
    }

    fn check_params(&self, p: &CropParams) -> Vec<(String, String)> {
        if p.size.is_some() == p.model.is_some() {
            return vec![(
                "size".into(),
                "set exactly one of `size` and `model`".into(),
            )];
        }
        match &p.size {
            Some(v) if v.len() != 2 || v.contains(&0) => {
                vec![("size".into(), "must be [H, W] with H, W > 0".into())]
            }
            _ => vec![],
        }
    }

    fn create(&self, p: CropParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        let mut liver_level = None;
        let size = match (p.size.as_deref(), &p.model) {
            (Some(&[h, w]), None) => (h, w),
            (None, Some(m)) => {
                let info = ModelInfo::load(m).map_err(|e| NodeError::msg(e.to_string()))?;
                liver_level = info.preprocess.iter().find_map(|s| match s {
                    PreprocessStep::LiverLevel { level } => Some(*level),
                    _ => None,
                });
                info.input_size
            }
            _ => {
                return Err(NodeError::msg(
                    "set exactly one of `size` and `model` = [H, W]",
                ))
            }
        };
        Ok(Box::new(CropResampleNode {
            mask: p.mask,
            boxes: BoxSpec {
                min_box: p.min_box,
                margin_mm: p.margin_mm,
            },
            size,
            liver_level,
        }))
    }
}

/// How boxes are drawn around the liver.
#[derive(Clone, Copy, Debug)]
pub struct BoxSpec {
    pub min_box: usize,
    pub margin_mm: f64,
}

/// `[j0, j1, i0, i1]`, end exclusive.
pub type Roi = [usize; 4];

/// Widens `[lo, hi)` (inside `0..n`) by `margin` px each side, then symmetrically to at least
/// `min_len`, then shifts it inside `0..n`.
fn widen(lo: usize, hi: usize, n: usize, margin: usize, min_len: usize) -> (usize, usize) {
    let len = (hi - lo + 2 * margin).max(min_len).min(n);
    let extra = len - (hi - lo);
    let start = lo as isize - (extra / 2) as isize;
    let start = start.clamp(0, (n - len) as isize) as usize;
    (start, start + len)
}

/// The crop box of one slice mask, or `None` when the slice has no liver. `spacing` is
/// `[dj, di]` in mm.
pub fn slice_box(mask: ArrayView2<bool>, spacing: [f64; 2], spec: BoxSpec) -> Option<Roi> {
    let (nj, ni) = mask.dim();
    let (mut j0, mut j1, mut i0, mut i1) = (usize::MAX, 0, usize::MAX, 0);
    for ((j, i), &m) in mask.indexed_iter() {
        if m {
            j0 = j0.min(j);
            j1 = j1.max(j + 1);
            i0 = i0.min(i);
            i1 = i1.max(i + 1);
        }
    }
    if j0 == usize::MAX {
        return None;
    }
    let px = |d: f64| {
        if d > 0.0 {
            (spec.margin_mm / d).ceil() as usize
        } else {
            0
        }
    };
    let (j0, j1) = widen(j0, j1, nj, px(spacing[0]), spec.min_box);
    let (i0, i1) = widen(i0, i1, ni, px(spacing[1]), spec.min_box);
    Some([j0, j1, i0, i1])
}

/// The liver level's change to the liver pixels: `+ offset`, then clipped to `[lo, hi]`.
#[derive(Clone, Copy, Debug)]
pub struct LiverShift {
    pub offset: f32,
    pub lo: f32,
    pub hi: f32,
}

/// The crop of one slice: image in the box (liver pixels moved by `shift`), non-liver pixels 0,
/// resized to `size`.
pub fn crop_slice(
    img: ArrayView2<f32>,
    mask: ArrayView2<bool>,
    roi: Roi,
    size: (usize, usize),
    shift: Option<LiverShift>,
) -> Array2<f32> {
    let [j0, j1, i0, i1] = roi;
    let mut c = img.slice(s![j0..j1, i0..i1]).to_owned();
    c.zip_mut_with(&mask.slice(s![j0..j1, i0..i1]), |v, &m| {
        *v = match (m, shift) {
            (false, _) => 0.0,
            (true, None) => *v,
            (true, Some(t)) => (*v + t.offset).clamp(t.lo, t.hi),
        }
    });
    resize_bilinear(c.view(), size.0, size.1)
}

/// The offset that moves the median of `img` over `mask` to `level` (0 for an empty mask).
pub fn liver_offset(img: &[f32], mask: &[bool], level: f64) -> f32 {
    let mut v: Vec<f32> = img
        .iter()
        .zip(mask)
        .filter_map(|(&x, &m)| m.then_some(x))
        .collect();
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    let (_, median, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    level as f32 - *median
}

struct CropResampleNode {
    mask: MaskSpec,
    boxes: BoxSpec,
    size: (usize, usize),
    liver_level: Option<f64>,
}

impl Node for CropResampleNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        // The image whole; of the liver stream only the thresholded mask (see `LiverSlices`).
        let mut zip = ctx.zip(&["image", "liver"])?;
        let (image_h, liver_h) = (zip.header(0).clone(), zip.header(1).clone());
        if image_h.stream_type != StreamType::Image {
            return Err(NodeError::msg(format!(
                "input `image` carries a {} stream, this node needs image",
                image_h.stream_type
            )));
        }
        check_liver_header(&liver_h, &image_h, "liver", "image")?;
        let mut image = Volume::zeros((*image_h).clone());
        let mut liver = LiverSlices::new(&liver_h, &self.mask, "liver", false)?;
        while let Some(a) = ctx.next_aligned(&mut zip)? {
            if let Some(s) = &a.slices[0] {
                image.put(s);
            }
            if let Some(s) = &a.slices[1] {
                liver.put(s);
            }
        }
        let (_, mask) = liver.finish(&self.mask, [liver_h.spacing[1], liver_h.spacing[2]]);
        let img = image.image().expect("image stream");
        let shift = match self.liver_level {
            None => None,
            Some(level) => {
                let (Some(img_s), Some(mask_s)) = (img.as_slice(), mask.as_slice()) else {
                    return Err(NodeError::msg("internal: volumes not contiguous"));
                };
                let (lo, hi) = image
                    .header
                    .value_range
                    .map_or((f32::MIN, f32::MAX), |(a, b)| (a as f32, b as f32));
                Some(LiverShift {
                    offset: liver_offset(img_s, mask_s, level),
                    lo,
                    hi,
                })
            }
        };
        let [nk, nj, ni] = image.header.shape;
        let sp = [image.header.spacing[1], image.header.spacing[2]];
        let rois: Vec<Option<Roi>> = (0..nk)
            .map(|k| slice_box(mask.slice(s![k, .., ..]), sp, self.boxes))
            .collect();

        let mut h = image.header.clone();
        if let Some(level) = self.liver_level {
            crate::preprocess::record_step(&mut h, &format!("liver_level:{level}"), false);
        }
        h.shape = [nk, self.size.0, self.size.1];
        h.meta.insert(META_FULL_SLICE.into(), vec![nj, ni].into());
        // Masked pixels are 0, so 0 joins the declared range.
        h.value_range = h.value_range.map(|(a, b)| (a.min(0.0), b.max(0.0)));
        ctx.set_total(rois.iter().flatten().count());
        ctx.send_header("out", h)?;
        for (k, roi) in rois.into_iter().enumerate() {
            let Some(roi) = roi else { continue };
            let crop = crop_slice(
                img.slice(s![k, .., ..]),
                mask.slice(s![k, .., ..]),
                roi,
                self.size,
                shift,
            );
            let mut out = Slice::new(k, SliceData::Image(crop));
            if let Some(m) = &image.slice_meta[k] {
                out.meta = m.clone();
            }
            out.meta.insert(META_ROI.into(), roi.to_vec().into());
            ctx.send_slice("out", out)?;
            ctx.tick();
        }
        ctx.end("out")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liver_offset_moves_the_median_of_the_mask() {
        let img = [0.9, 0.1, 0.4, 0.5, 0.2, 0.7];
        let mask = [false, true, true, true, false, true];
        // Liver values 0.1, 0.4, 0.5, 0.7: upper median 0.5.
        assert!((liver_offset(&img, &mask, 0.6) - 0.1).abs() < 1e-6);
        assert_eq!(liver_offset(&img, &[false; 6], 0.6), 0.0);
    }

    #[test]
    fn widen_is_symmetric_and_clamped() {
        // 10 px of liver in a 100 px slice, min 60: 25 px each side.
        assert_eq!(widen(40, 50, 100, 0, 60), (15, 75));
        // Near the edge: shifted, not shrunk.
        assert_eq!(widen(0, 10, 100, 0, 60), (0, 60));
        assert_eq!(widen(95, 100, 100, 0, 60), (40, 100));
        // Slice smaller than min_box: the whole slice.
        assert_eq!(widen(3, 5, 40, 0, 60), (0, 40));
        // Already larger than min_box: only the margin.
        assert_eq!(widen(10, 80, 100, 2, 60), (8, 82));
    }

    #[test]
    fn box_contains_mask_and_margin_in_mm() {
        let mut m = Array2::from_elem((100, 120), false);
        m[[20, 30]] = true;
        m[[90, 31]] = true;
        // Rows 20..91 (71 px) + 3 mm / 1.5 mm = 2 px each side; columns 30..32 -> 60 px.
        let b = slice_box(
            m.view(),
            [1.5, 1.0],
            BoxSpec {
                min_box: 60,
                margin_mm: 3.0,
            },
        )
        .unwrap();
        assert_eq!(b, [18, 93, 1, 61]);
        assert!(slice_box(
            Array2::from_elem((5, 5), false).view(),
            [1.0, 1.0],
            BoxSpec {
                min_box: 3,
                margin_mm: 0.0
            }
        )
        .is_none());
    }
}
