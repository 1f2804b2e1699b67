//! `report`: one self-contained HTML page per case: what was run, the liver and lesion
//! numbers of `stats`, the metrics against a ground truth, the `overlay` images, node timings.

use super::overlay::{self, OverlayParams, OverlaySpec};
pub use super::page::{esc, fmt_ml};
use super::page::{hex, GraphInfo, Page};
use super::stats::{case_name, case_stats};
use super::viewer::{self, Viewer};
use crate::eval::metrics::{evaluate, parse_classes, DEFAULT_CLASSES};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use voxflow_onnx::ModelInfo;
use voxflow_runtime::{BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeParams, TypedKind};

pub struct Report;

const DOCS: &str = r#"
Gathers `image`, `label` and optionally `truth` (like `overlay`) and writes one HTML file with
everything embedded (images as `data:` URIs, no external files):

- the case (`case`, default the input file name without extension), the input file with its
  shape, voxel size and modality (and the DICOM patient, study date and series when the input
  was a DICOM series), the graph (name, file, SHA-256 of the file, voxflow version) and the
  version of each model in `models` (ONNX metadata `voxflow.model_version`);
- liver volume, lesion count and each lesion's volume and largest diameter: the numbers of the
  `stats` node (same code), rounded;
- with `truth`: the `metrics` node's table (Dice, VOE, RVD, ASD, MSD, HD95 for liver = label
  >= 1 and lesion = label 2) and lesion detection counts;
- the `overlay` images (same params, same code: with equal params they are byte for byte the
  PNG files `overlay` writes), the largest-area slices first, each with why it was chosen, and
  a colour legend;
- with `viewer` (default on), right after the tables: an interactive viewer (NiiVue, inlined)
  of the image with the label over it in three planes, scrolling through every slice, and
  the label in 3D; the image is embedded windowed to 8 bits (the overlay's grey window) and,
  above `viewer_voxels` voxels, averaged in-plane over blocks (the label by majority);
- per-node wall and busy times of the nodes that had finished when the report was written
  (the report waits for every node upstream of it, so those are always included).

A short inline script stores each image's decoded width in its `data-width` attribute once
the page has loaded, so automated checks (`tests/report.rs`, headless Chromium) can see that
the images render.
"#;

/// Params of `report`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    #[serde(flatten)]
    #[param(flatten)]
    pub overlay: OverlayParams,
    /// output HTML file
    #[param(writes)]
    pub path: PathBuf,
    /// case name (default: the input file name without extension)
    pub case: Option<String>,
    /// embed the interactive viewer (NiiVue) of image and label
    #[param(default = true)]
    pub viewer: bool,
    /// most voxels the viewer embeds; larger volumes are downsampled in-plane
    #[param(default = viewer::DEFAULT_MAX_VOXELS, min = 1)]
    pub viewer_voxels: usize,
    /// ONNX models whose versions the report lists
    #[param(default = Vec::new())]
    pub models: Vec<PathBuf>,
}

impl TypedKind for Report {
    type Params = ReportParams;

    fn declare(&self) -> NodeDecl {
        let d = NodeDecl::new(
            "report",
            "Self-contained HTML report of one case: numbers, metrics, overlay images, timings",
        )
        .docs(DOCS);
        overlay::declare_inputs(d)
    }

    fn check_params(&self, p: &ReportParams) -> Vec<(String, String)> {
        let mut errs = p.overlay.check();
        let path = p.path.to_string_lossy();
        if !path.ends_with(".html") {
            errs.push(("path".into(), format!("`{path}` must end in .html")));
        }
        errs
    }

    fn create(&self, p: ReportParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        let models = p
            .models
            .iter()
            .map(|m| ModelInfo::load(m).map_err(|e| NodeError::msg(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(ReportNode {
            spec: p.overlay.spec()?,
            path: p.path,
            case: p.case,
            viewer_voxels: p.viewer.then_some(p.viewer_voxels),
            models,
        }))
    }
}

struct ReportNode {
    spec: OverlaySpec,
    path: PathBuf,
    case: Option<String>,
    /// The viewer's voxel budget; `None`: no viewer.
    viewer_voxels: Option<usize>,
    models: Vec<ModelInfo>,
}

impl Node for ReportNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let (image, label, truth) = overlay::gather_case(ctx)?;
        let case = case_name(&image.header, self.case.as_deref());
        let stats = case_stats(label.label().expect("checked"), &label.header, &case);
        let metrics = match &truth {
            Some(t) => Some(evaluate(
                &label,
                t,
                &parse_classes(&DEFAULT_CLASSES)?,
                &["lesion".into()],
            )?),
            None => None,
        };
        let drawn = overlay::draw(&image, &label, truth.as_ref(), &self.spec)?;
        let viewer = match self.viewer_voxels {
            Some(max) => Some(Viewer::new(
                &image,
                &label,
                overlay::display_window(&image, &self.spec),
                max,
            )?),
            None => None,
        };
        let timings = ctx.finished_nodes()?;
        let file_sha = |p: &std::path::Path| {
            (
                p.display().to_string(),
                std::fs::read(p)
                    .map(|b| hex(&Sha256::digest(&b)))
                    .unwrap_or_else(|e| format!("unreadable: {e}")),
            )
        };
        let graph = GraphInfo {
            name: ctx.graph_name().to_string(),
            file: file_sha(ctx.graph_file()),
            includes: ctx.graph_includes().iter().map(|p| file_sha(p)).collect(),
        };
        let html = Page {
            case: &case,
            image: &image.header,
            graph: &graph,
            models: &self.models,
            stats: &stats,
            metrics: metrics.as_deref(),
            drawn: &drawn,
            viewer: viewer.as_ref(),
            timings: &timings,
        }
        .html();
        let tmp = ctx.output_file(&self.path)?;
        std::fs::write(&tmp, html)
            .map_err(|e| NodeError::msg(format!("cannot write {}: {e}", self.path.display())))
    }
}
