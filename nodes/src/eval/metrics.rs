//! `metrics`: Dice, VOE, RVD, ASD, MSD, HD95 and lesion detection of a prediction against
//! the truth (kernel: `voxflow_metrics`).

use serde::Deserialize;
use std::path::PathBuf;
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::StreamType;
use voxflow_runtime::{BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeParams, TypedKind};

pub use super::scoring::*;

pub struct Metrics;

const DOCS: &str = r#"
Gathers `pred` and `truth` (label volumes on the same grid) and, for each class, compares the
binary masks with the definitions of MedPy 0.5.2 / the LiTS evaluation code:

- Dice = 2|P∩G|/(|P|+|G|), VOE = 1 − |P∩G|/|P∪G|, RVD = (|P|−|G|)/|G| (signed fraction).
- Surface = mask voxels with a 6-neighbour outside the mask (outside the array counts as
  background); distances are exact Euclidean distances in mm between voxel centres.
  ASD = mean of the pooled distances of both surfaces, MSD = max of both directed maxima
  (Hausdorff), HD95 = 95th percentile (linear) of the pooled distances.
- Empty masks: an undefined value is `null` with a reason beside it
  (`"asd_mm": null, "asd_mm_note": "pred empty"`, or "truth empty", "both empty");
  Dice/VOE of two empty masks are 1/0.
- Detection (classes listed in `detection`): 26-connected components; a truth lesion is
  detected if at least one of its voxels is predicted; a predicted component sharing no voxel
  with the truth is a false positive. `detection.sized` counts the same over lesions that
  matter: truth lesions of >= 1 mL found by predicted components of >= 0.5 mL, and how many
  such components touch a truth lesion.

`classes` is a list of `NAME:RULE`, RULE one of `>=N`, `>N`, `<=N`, `<N`, `==N`, `!=N` or a
comma list of labels `N,M,...` (default `[liver:>=1, lesion:==2]`).

`json` gets `{"liver": {"dice": ..., "voe": ..., "rvd": ..., "asd_mm": ..., "msd_mm": ...,
"hd95_mm": ..., "pred_voxels": ..., ...}, "lesion": {..., "detection": {...}}}`; `csv` gets
one row per class (undefined values are empty cells, the reasons are in the `note` column).
Pred and truth with a different shape or affine is an error.
"#;

fn write(path: &std::path::Path, text: &str) -> Result<(), NodeError> {
    std::fs::write(path, text)
        .map_err(|e| NodeError::msg(format!("cannot write {}: {e}", path.display())))
}

/// Params of `metrics`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct MetricsParams {
    /// classes as NAME:RULE (`>=N`, `==N`, `N,M`, ...)
    #[param(default = DEFAULT_CLASSES.map(String::from).to_vec())]
    pub classes: Vec<String>,
    /// classes that also get per-lesion detection counts
    #[param(default = vec!["lesion".to_string()])]
    pub detection: Vec<String>,
    /// JSON output file
    #[param(writes)]
    pub json: Option<PathBuf>,
    /// CSV output file, one row per class
    #[param(writes)]
    pub csv: Option<PathBuf>,
}

impl TypedKind for Metrics {
    type Params = MetricsParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            "metrics",
            "Dice, VOE, RVD, ASD, MSD, HD95 and lesion detection of pred vs truth",
        )
        .docs(DOCS)
        .input(
            "pred",
            PortType::Fixed(StreamType::Label),
            "predicted labels",
        )
        .input(
            "truth",
            PortType::Fixed(StreamType::Label),
            "ground-truth labels, same grid",
        )
    }

    fn check_params(&self, p: &MetricsParams) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        match parse_classes(&p.classes) {
            Err(e) => errs.push(("classes".into(), e)),
            Ok(c) => {
                if let Err(e) = check_detection(&c, &p.detection) {
                    errs.push(("detection".into(), e));
                }
            }
        }
        if p.json.is_none() && p.csv.is_none() {
            errs.push((
                "json".into(),
                "set `json` and/or `csv`, else the metrics go nowhere".into(),
            ));
        }
        errs
    }

    fn create(&self, p: MetricsParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(MetricsNode {
            classes: parse_classes(&p.classes)?,
            detect: p.detection,
            json: p.json,
            csv: p.csv,
        }))
    }
}

struct MetricsNode {
    classes: Vec<ClassSpec>,
    detect: Vec<String>,
    json: Option<PathBuf>,
    csv: Option<PathBuf>,
}

impl Node for MetricsNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let mut v = ctx.gather_many(&["pred", "truth"])?;
        let truth = v.pop().expect("two volumes");
        let pred = v.pop().expect("two volumes");
        let results = evaluate(&pred, &truth, &self.classes, &self.detect)?;
        for r in &results {
            tracing::info!(class = %r.name, dice = ?r.metrics.dice, asd_mm = ?r.metrics.asd_mm, "metrics");
        }
        if let Some(path) = &self.json {
            let text = serde_json::to_string_pretty(&to_json(&results)).expect("json") + "\n";
            write(&ctx.output_file(path)?, &text)?;
        }
        if let Some(path) = &self.csv {
            write(&ctx.output_file(path)?, &to_csv(&results))?;
        }
        Ok(())
    }
}
