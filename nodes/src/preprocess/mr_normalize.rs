//! `mr_normalize`: MR intensity normalisation by foreground percentiles.

use ndarray::{Array3, Zip};
use serde::{Deserialize, Serialize};
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::{StreamType, Volume, VolumeData};
use voxflow_runtime::{
    BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeParams, ParamEnum, TypedKind,
};

use super::n4::{make_mask, MaskMode};
use voxflow_volume::percentile_linear;

pub struct MrNormalize;

const DOCS: &str = r#"
MR intensities have no absolute scale (unlike CT's Hounsfield units), so this node plays the role
of `hu_window` for MR. Definition, per volume: let `F` be the foreground voxels (`foreground`:
`nonzero` = != 0, the default; `otsu` = above SimpleITK's `OtsuThreshold(image, 0, 1, 200)`;
`all`), NaN excluded; `lo`, `hi` = the `p_low` and `p_high` percentiles of the values in `F` (linear
interpolation between order statistics, as numpy's default `percentile`). Every voxel `v` maps
to `(clamp(v, lo, hi) - lo) / (hi - lo)`, in [0, 1]. The output declares the value range (0, 1),
so `equalize` can follow. `lo == hi` is an error.

`otsu` suits bright-organ images only: its `lo` is near the Otsu threshold, so every tissue darker
than the threshold becomes 0. On CHAOS T2 volume 15 (a dark liver) it set 90 % of the liver to 0,
and fold models trained that way scored Dice 0.00 on it (docs/RESULTS.md); `nonzero` keeps it.

The optional input `corrected` (e.g. the output of `n4`) is normalised instead of `in` when it is
connected; `in` is then only read and checked for the same shape. A graph can thus switch the
bias correction off with `enabled:` and keep this node fed: `mr_normalize: { in: mr, corrected: n4 }`.
"#;

/// Voxels the percentiles are taken over.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, ParamEnum)]
#[serde(rename_all = "snake_case")]
pub enum Foreground {
    Otsu,
    Nonzero,
    All,
}

/// Params of `mr_normalize`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct MrNormalizeParams {
    /// lower percentile (of the foreground) mapped to 0
    #[param(default = 0.5, min = 0, max = 100)]
    pub p_low: f64,
    /// upper percentile (of the foreground) mapped to 1
    #[param(default = 99.5, min = 0, max = 100)]
    pub p_high: f64,
    /// voxels the percentiles are taken over
    #[param(default = Foreground::Nonzero)]
    pub foreground: Foreground,
}

impl TypedKind for MrNormalize {
    type Params = MrNormalizeParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            "mr_normalize",
            "MR intensity normalisation: clip to foreground percentiles, scale to [0, 1]",
        )
        .docs(DOCS)
        .input("in", PortType::Fixed(StreamType::Image), "MR image")
        .optional_input(
            "corrected",
            PortType::Fixed(StreamType::Image),
            "bias-corrected version of `in`; normalised instead of `in` when connected",
        )
        .output(
            "out",
            PortType::Fixed(StreamType::Image),
            "normalised image in [0, 1]",
        )
    }

    fn check_params(&self, p: &MrNormalizeParams) -> Vec<(String, String)> {
        if p.p_low >= p.p_high {
            return vec![(
                "p_high".into(),
                format!("must be greater than p_low ({})", p.p_low),
            )];
        }
        vec![]
    }

    fn create(&self, p: MrNormalizeParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(MrNormalizeNode {
            p_low: p.p_low,
            p_high: p.p_high,
            foreground: match p.foreground {
                Foreground::Otsu => MaskMode::Otsu,
                Foreground::Nonzero => MaskMode::Nonzero,
                Foreground::All => MaskMode::All,
            },
        }))
    }
}

/// Normalises `image` as the node docs define; returns the result and `(lo, hi)`.
pub fn normalize(
    image: &Array3<f32>,
    foreground: MaskMode,
    p_low: f64,
    p_high: f64,
) -> Result<(Array3<f32>, f32, f32), String> {
    let mask = make_mask(image, foreground);
    let mut vals: Vec<f64> = Zip::from(image)
        .and(&mask)
        .fold(Vec::new(), |mut acc, &v, &m| {
            if m && !v.is_nan() {
                acc.push(v as f64);
            }
            acc
        });
    let lo = percentile_linear(&mut vals, p_low)
        .ok_or("the foreground is empty: no voxel to take percentiles over")? as f32;
    let hi = percentile_linear(&mut vals, p_high).expect("not empty") as f32;
    if hi <= lo || !(hi - lo).is_finite() {
        return Err(format!(
            "the foreground's {p_low} and {p_high} percentiles are {lo} and {hi}: no intensity range to scale"
        ));
    }
    let out = image.mapv(|v| (v.clamp(lo, hi) - lo) / (hi - lo));
    Ok((out, lo, hi))
}

struct MrNormalizeNode {
    p_low: f64,
    p_high: f64,
    foreground: MaskMode,
}

impl Node for MrNormalizeNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let vol = if ctx.has_input("corrected") {
            // `in` only has to match in shape: its slices are dropped as they come.
            let mut zip = ctx.zip(&["in", "corrected"])?;
            let (raw, c) = (zip.header(0).clone(), zip.header(1).clone());
            if raw.shape != c.shape {
                return Err(NodeError::msg(format!(
                    "input `corrected` has shape {:?} (k, j, i), `in` has {:?}",
                    c.shape, raw.shape
                )));
            }
            ctx.set_total(c.num_slices());
            let mut v = Volume::zeros((*c).clone());
            while let Some(aligned) = ctx.next_aligned(&mut zip)? {
                if let Some(s) = &aligned.slices[1] {
                    v.put(s);
                    ctx.tick();
                }
            }
            v
        } else {
            ctx.gather("in")?
        };
        let image = vol.image().ok_or_else(|| {
            NodeError::msg(format!(
                "mr_normalize needs an image stream, got {}",
                vol.header.stream_type
            ))
        })?;
        let (out, lo, hi) = normalize(image, self.foreground, self.p_low, self.p_high)?;
        tracing::debug!(node = ctx.id(), lo, hi, "mr_normalize percentiles");
        let mut h = vol.header.clone();
        h.value_range = Some((0.0, 1.0));
        let step = format!("mr_norm:{},{}", self.p_low, self.p_high);
        super::record_step(&mut h, &step, true);
        let mut v = Volume::new(h, VolumeData::Image(out));
        v.slice_meta = vol.slice_meta;
        ctx.emit_volume("out", &v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxflow_runtime::NodeKind;

    #[test]
    fn clips_and_scales_over_the_foreground() {
        // background 0, foreground 1..=100 on a 1x10x10 grid
        let img = Array3::from_shape_fn((1, 10, 10), |(_, j, i)| (j * 10 + i + 1) as f32);
        let mut img2 = img.clone();
        img2[[0, 0, 0]] = 0.0;
        let (out, lo, hi) = normalize(&img2, MaskMode::Nonzero, 10.0, 90.0).unwrap();
        // nonzero values are 2..=100 (99 values): p10 = 2 + 9.8, p90 = 2 + 88.2
        assert!(
            (lo - 11.8).abs() < 1e-4 && (hi - 90.2).abs() < 1e-4,
            "{lo} {hi}"
        );
        assert_eq!(out[[0, 0, 0]], 0.0);
        assert_eq!(out[[0, 9, 9]], 1.0);
        assert!((out[[0, 5, 0]] - (51.0 - lo) / (hi - lo)).abs() < 1e-6);
        assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
        let flat = Array3::from_elem((2, 3, 3), 7.0f32);
        let e = normalize(&flat, MaskMode::All, 1.0, 99.0).unwrap_err();
        assert!(e.contains("no intensity range"), "{e}");
    }

    #[test]
    fn the_default_foreground_keeps_tissue_darker_than_the_otsu_threshold() {
        // air 0 (half), a dark organ at 100, bright fat at 1000 with a little spread
        let img = Array3::from_shape_fn((2, 20, 20), |(k, j, i)| match i {
            0..=9 => 0.0,
            10..=14 => 100.0 + (j + k) as f32,
            _ => 1000.0 + (j + k) as f32,
        });
        let organ = [0, 5, 12];
        let (otsu, ..) = normalize(&img, MaskMode::Otsu, 0.5, 99.5).unwrap();
        assert_eq!(otsu[organ], 0.0, "otsu: the dark organ is clipped to air");
        let decl = MrNormalize.decl();
        let fg = decl.params.iter().find(|d| d.name == "foreground").unwrap();
        assert_eq!(
            fg.default.as_ref().and_then(|v| v.as_str()),
            Some("nonzero")
        );
        let (out, ..) = normalize(&img, MaskMode::Nonzero, 0.5, 99.5).unwrap();
        assert_eq!(out[[0, 5, 0]], 0.0);
        assert!(
            out[organ] > 0.0 && out[organ] < out[[0, 5, 16]],
            "{}",
            out[organ]
        );
    }
}
