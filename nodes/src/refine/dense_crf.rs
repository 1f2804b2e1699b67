//! `dense_crf`: 3D fully connected CRF over a probability volume (issue 5, step 4 of the paper).

use crate::inference::argmax::argmax_slice;
use ndarray::Axis;
use serde::{Deserialize, Serialize};
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::{Header, SliceData, StreamType, Volume};
use voxflow_runtime::{
    BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeParams, ParamEnum, Slice, TypedKind,
};

use super::crf_volume::refine_until;
pub use super::crf_volume::{argmax_prob, refine, Refined};
pub use voxflow_crf::CrfParams;

/// Most classes the kernel handles.
pub const MAX_CLASSES: usize = 16;

const DOCS: &str = r#"
Mean-field inference of a fully connected CRF (Kraehenbuehl & Koltun 2011) in 3D, as in step 4
of Christ et al. 2017: unary `-ln p` from `prob`, Potts pairwise term
`w_pos exp(-d^2 / 2 sigma_pos^2) + w_bil exp(-d^2 / 2 sigma_bil^2 - dI^2 / 2 sigma_int^2)`
with `d` the distance in mm and `dI` the intensity difference of `image`. Filtering: the
bilateral kernel with the 4D permutohedral lattice (as pydensecrf), the spatial kernel as an
exact separable Gaussian on the voxel grid (truncated at 4 sigma) instead of pydensecrf's
lattice approximation of it. Kernel: crate `voxflow-crf`; its labels agree with pydensecrf
(`crf3d.py`) on >= 99.86 % of the voxels of its test volumes (kernel REPORT.md).

**Units.** Positions are in mm (the header spacing), so a graph means the same at any voxel
size. The defaults are the authors' code (saratan: pos std 1.5 px, weight 3; bilateral std
9 px, intensity std 20, weight 10; 10 iterations) converted: they ran on slices resized to
388 px, i.e. 512 px x 0.7 mm / 388 = 0.92 mm per pixel, so 1.5 px = 1.4 mm and 9 px = 8.3 mm;
their intensities were 0..255 over the [-100, 400] HU window, so 20 levels = 20 x 500 / 255 =
39 HU. `sigma_int` is in the units of `image`: feed the HU-windowed CT (`hu_window` with
`scale: none`); for a [0, 1]-scaled image divide it by the window width (39 / 500 = 0.078).

**Region.** `roi: liver` (default) runs on the bounding box of the voxels whose argmax is not
class 0 (background), widened by `margin_mm` on every side and clipped to the volume; outside
the box `prob` passes unchanged and `label` is its argmax. With no foreground voxel the CRF is
skipped. `roi: full` runs on the whole volume. Memory is in proportion to the box.

**Outputs.** `label`: argmax of the refined probabilities (first class on ties); `prob`: the
refined probabilities (same classes and metadata as the input). Both inputs must be whole
volumes on the same grid; channel 0 is background. With `iterations: 0` nothing is refined: the
node streams slice by slice (no whole volume held), `label` is the argmax of `prob` and `prob`
passes unchanged.
"#;

pub struct DenseCrf;

/// Where the CRF runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CrfRoi {
    /// Bounding box of the non-background argmax plus a margin in mm.
    Liver {
        margin_mm: f64,
    },
    Full,
}

/// `roi` param: where the CRF runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, ParamEnum)]
#[serde(rename_all = "snake_case")]
pub enum RoiParam {
    Liver,
    Full,
}

/// Params of `dense_crf`; defaults from the kernel's [`CrfParams`].
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct DenseCrfParams {
    /// weight of the spatial kernel (0 disables it)
    #[param(default = CrfParams::default().w_pos, min = 0)]
    pub w_pos: f32,
    /// std of the spatial kernel, mm
    #[param(default = CrfParams::default().sigma_pos_mm, gt = 0)]
    pub sigma_pos_mm: f32,
    /// weight of the bilateral kernel (0 disables it)
    #[param(default = CrfParams::default().w_bil, min = 0)]
    pub w_bil: f32,
    /// positional std of the bilateral kernel, mm
    #[param(default = CrfParams::default().sigma_bil_mm, gt = 0)]
    pub sigma_bil_mm: f32,
    /// intensity std of the bilateral kernel, in image units
    #[param(default = CrfParams::default().sigma_int, gt = 0)]
    pub sigma_int: f32,
    /// mean-field iterations
    #[param(default = CrfParams::default().iterations, max = 1000)]
    pub iterations: usize,
    /// where the CRF runs (see docs)
    #[param(default = RoiParam::Liver)]
    pub roi: RoiParam,
    /// margin around the foreground box with `roi: liver`, mm
    #[param(default = 10.0, min = 0)]
    pub margin_mm: f64,
}

impl DenseCrfParams {
    /// The kernel settings and region.
    pub fn config(&self) -> CrfConfig {
        CrfConfig {
            params: CrfParams {
                w_pos: self.w_pos,
                sigma_pos_mm: self.sigma_pos_mm,
                w_bil: self.w_bil,
                sigma_bil_mm: self.sigma_bil_mm,
                sigma_int: self.sigma_int,
                iterations: self.iterations,
            },
            roi: match self.roi {
                RoiParam::Full => CrfRoi::Full,
                RoiParam::Liver => CrfRoi::Liver {
                    margin_mm: self.margin_mm,
                },
            },
        }
    }
}

/// What [`refine`] runs: kernel settings and region (from the node params, or from
/// `voxflow crf-search`).
#[derive(Clone, Debug, PartialEq)]
pub struct CrfConfig {
    pub params: CrfParams,
    pub roi: CrfRoi,
}

impl CrfConfig {
    /// Errors for values the kernel cannot take.
    pub fn check(&self) -> Result<(), String> {
        let p = &self.params;
        for (name, v) in [
            ("sigma_pos_mm", p.sigma_pos_mm),
            ("sigma_bil_mm", p.sigma_bil_mm),
            ("sigma_int", p.sigma_int),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("param `{name}` must be a positive number, got {v}"));
            }
        }
        for (name, v) in [("w_pos", p.w_pos), ("w_bil", p.w_bil)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("param `{name}` must be a number >= 0, got {v}"));
            }
        }
        if let CrfRoi::Liver { margin_mm } = self.roi {
            if !(margin_mm.is_finite() && margin_mm >= 0.0) {
                return Err(format!(
                    "param `margin_mm` must be a number >= 0, got {margin_mm}"
                ));
            }
        }
        Ok(())
    }

    /// The params as YAML lines of a `dense_crf` node (for `crf-search`).
    pub fn to_yaml(&self) -> String {
        let p = &self.params;
        let mut y = format!(
            "w_pos: {}\nsigma_pos_mm: {}\nw_bil: {}\nsigma_bil_mm: {}\nsigma_int: {}\niterations: {}\n",
            round4(p.w_pos),
            round4(p.sigma_pos_mm),
            round4(p.w_bil),
            round4(p.sigma_bil_mm),
            round4(p.sigma_int),
            p.iterations
        );
        match self.roi {
            CrfRoi::Full => y.push_str("roi: full\n"),
            CrfRoi::Liver { margin_mm } => {
                y.push_str(&format!("roi: liver\nmargin_mm: {margin_mm}\n"))
            }
        }
        y
    }
}

fn round4(v: f32) -> f64 {
    let v = v as f64;
    if v == 0.0 {
        return 0.0;
    }
    let scale = 10f64.powi(3 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

impl TypedKind for DenseCrf {
    type Params = DenseCrfParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            "dense_crf",
            "3D dense CRF refinement of class probabilities (mean field, permutohedral lattice)",
        )
        .docs(DOCS)
        .input(
            "image",
            PortType::Fixed(StreamType::Image),
            "intensities, e.g. the HU-windowed CT",
        )
        .input(
            "prob",
            PortType::Fixed(StreamType::Prob),
            "class probabilities (channel 0 = background)",
        )
        .output(
            "label",
            PortType::Fixed(StreamType::Label),
            "argmax of the refined probabilities",
        )
        .output(
            "prob",
            PortType::Fixed(StreamType::Prob),
            "refined probabilities",
        )
    }

    fn create(&self, p: DenseCrfParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        // The declared bounds have checked the params; `refine` checks the config again for
        // callers that build one themselves (`voxflow crf-search`).
        Ok(Box::new(DenseCrfNode { config: p.config() }))
    }
}

struct DenseCrfNode {
    config: CrfConfig,
}

/// The slices a gathered input lacks, as an error.
fn need_all_slices(v: &Volume, port: &str) -> Result<(), NodeError> {
    match v.slice_meta.iter().position(Option::is_none) {
        Some(k) => Err(NodeError::msg(format!(
            "input `{port}` has no slice {k} (of {}); dense_crf needs whole volumes",
            v.slice_meta.len()
        ))),
        None => Ok(()),
    }
}

impl DenseCrfNode {
    /// No iterations: the CRF leaves `prob` as it is, so the node streams, slice by slice, the
    /// argmax and the probabilities, after the checks the whole-volume path makes.
    fn argmax_stream(&self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let mut zip = ctx.zip(&["image", "prob"])?;
        let (image, prob) = (zip.header(0).clone(), zip.header(1).clone());
        if !image.same_geometry(&prob) {
            return Err(NodeError::msg(format!(
                "inputs `image` ({:?} voxels) and `prob` ({:?} voxels) are not on the same grid (shape or affine differ)",
                image.shape, prob.shape
            )));
        }
        if prob.channels == 0 || prob.channels > MAX_CLASSES {
            return Err(NodeError::msg(format!(
                "`prob` has {} classes; dense_crf handles 1 to {MAX_CLASSES}",
                prob.channels
            )));
        }
        let lh: Header = prob.with_type(StreamType::Label, 1);
        let nk = lh.num_slices();
        ctx.set_total(nk);
        ctx.send_header("label", lh)?;
        ctx.send_header("prob", (*prob).clone())?;
        let missing = |port: &str, k: usize| {
            NodeError::msg(format!(
                "input `{port}` has no slice {k} (of {nk}); dense_crf needs every slice"
            ))
        };
        let mut next = 0;
        while let Some(aligned) = ctx.next_aligned(&mut zip)? {
            let (Some(im), Some(p)) = (&aligned.slices[0], &aligned.slices[1]) else {
                let port = if aligned.slices[0].is_none() {
                    "image"
                } else {
                    "prob"
                };
                return Err(missing(port, aligned.index));
            };
            if aligned.index != next {
                return Err(missing("prob", next));
            }
            let k = aligned.index;
            if let Some(((j, i), v)) = im
                .data
                .image()
                .and_then(|a| a.indexed_iter().find(|(_, v)| !v.is_finite()))
            {
                return Err(NodeError::msg(format!(
                    "`image` has the non-finite value {v} at voxel (i, j, k) = ({i}, {j}, {k})"
                )));
            }
            let pk = p.data.prob().expect("prob stream");
            if let Some(((c, j, i), v)) = pk
                .indexed_iter()
                .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
            {
                return Err(NodeError::msg(format!(
                    "`prob` has the value {v} (class {c}) at voxel (i, j, k) = ({i}, {j}, {k}); probabilities must be finite and >= 0"
                )));
            }
            let label = argmax_slice(pk);
            let mut ls = Slice::new(k, SliceData::Label(label));
            ls.meta = p.meta.clone();
            ctx.send_slice("label", ls)?;
            ctx.forward_slice("prob", p.clone())?;
            ctx.tick();
            next += 1;
        }
        if next != nk {
            return Err(missing("prob", next));
        }
        ctx.end("label")?;
        ctx.end("prob")
    }
}

impl Node for DenseCrfNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        if self.config.params.iterations == 0 {
            return self.argmax_stream(ctx);
        }
        let mut vols = ctx.gather_many(&["image", "prob"])?;
        let prob = vols.pop().expect("two inputs");
        let image = vols.pop().expect("two inputs");
        need_all_slices(&image, "image")?;
        need_all_slices(&prob, "prob")?;
        if !image.header.same_geometry(&prob.header) {
            return Err(NodeError::msg(format!(
                "inputs `image` ({:?} voxels) and `prob` ({:?} voxels) are not on the same grid (shape or affine differ)",
                image.header.shape, prob.header.shape
            )));
        }
        if let Some((lo, hi)) = image.header.value_range {
            if hi - lo <= 2.0 && self.config.params.sigma_int > 2.0 * (hi - lo) as f32 {
                tracing::warn!(
                    "{}: image values span [{lo}, {hi}] but sigma_int is {} (image units): the bilateral kernel ignores intensity",
                    ctx.id(),
                    self.config.params.sigma_int
                );
            }
        }
        let spacing = prob.header.spacing;
        let (img, pr) = (
            image.image().expect("image stream"),
            prob.prob().expect("prob stream"),
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(ctx.threads().max(1))
            .build()
            .map_err(|e| NodeError::msg(format!("cannot start threads: {e}")))?;
        let cancel = ctx.cancel_token();
        let r = pool
            .install(|| {
                refine_until(img.view(), pr.view(), spacing, &self.config, &|| {
                    cancel.is_cancelled()
                })
            })
            .map_err(NodeError::msg)?
            .ok_or(NodeError::Cancelled)?;
        tracing::debug!("{}: CRF box {:?}", ctx.id(), r.bounds);

        let lh: Header = prob.header.with_type(StreamType::Label, 1);
        let nk = lh.num_slices();
        ctx.set_total(nk);
        ctx.send_header("label", lh)?;
        ctx.send_header("prob", prob.header.clone())?;
        for k in 0..nk {
            let meta = prob.slice_meta[k].clone().unwrap_or_default();
            let mut ls = Slice::new(
                k,
                SliceData::Label(r.label.index_axis(Axis(0), k).to_owned()),
            );
            ls.meta = meta.clone();
            ctx.send_slice("label", ls)?;
            let mut ps = Slice::new(k, SliceData::Prob(r.prob.index_axis(Axis(0), k).to_owned()));
            ps.meta = meta;
            ctx.send_slice("prob", ps)?;
        }
        ctx.end("label")?;
        ctx.end("prob")
    }
}
