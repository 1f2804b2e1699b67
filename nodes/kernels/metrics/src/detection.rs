//! Per-lesion detection counts by 3-D connected components.

use ndarray::ArrayView3;
use serde_json::{json, Value};
use voxflow_volume::components::{Connectivity, Runs};

/// The matching rule, as written into the JSON output.
pub const DETECTION_RULE: &str = "26-connected components; a truth lesion is detected (true positive) if at least one of its voxels is also predicted; a predicted component that shares no voxel with the truth is a false positive";

/// One truth lesion (26-connected component of `truth`).
#[derive(Debug, Clone, PartialEq)]
pub struct TruthLesion {
    /// Component label in raster order of first voxel (1-based).
    pub label: u32,
    /// Voxel count.
    pub voxels: u64,
    /// Volume in mm³ (`voxels * dk * dj * di`).
    pub volume_mm3: f64,
    /// Predicted voxels inside this lesion.
    pub overlap_voxels: u64,
    /// `overlap_voxels > 0`.
    pub detected: bool,
}

/// Lesion-level detection counts.
///
/// Rule (see [`DETECTION_RULE`]): lesions are the 26-connected components of each mask.
/// A truth lesion is a **true positive** if any of its voxels is `true` in `pred`
/// ("any overlap", as in LiTS-style detection), otherwise it is **missed**. A predicted
/// component with no voxel in common with `truth` is a **false positive**. A predicted
/// component that touches two truth lesions makes both of them true positives, and a truth
/// lesion touched by two predicted components counts once.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Truth lesions with at least one predicted voxel.
    pub true_positive: usize,
    /// Predicted components without any truth voxel.
    pub false_positive: usize,
    /// Truth lesions without any predicted voxel.
    pub missed: usize,
    /// Number of truth lesions (`true_positive + missed`).
    pub truth_lesions: usize,
    /// Number of predicted components.
    pub pred_lesions: usize,
    /// Per truth lesion details, in label order.
    pub lesions: Vec<TruthLesion>,
    /// The rule used, human readable.
    pub rule: &'static str,
    /// Voxel count of each predicted component, in label order.
    pub pred_voxels: Vec<u64>,
    /// (predicted component, truth lesion) label pairs that share a voxel, sorted.
    pub touching: Vec<(u32, u32)>,
    /// Volume of one voxel in mm³.
    pub voxel_mm3: f64,
}

/// Truth lesions of at least this volume count in [`Detection::sized`] by default (1 mL).
pub const SIZED_TRUTH_MIN_MM3: f64 = 1000.0;
/// Predicted components of at least this volume count in [`Detection::sized`] by default (0.5 mL).
pub const SIZED_PRED_MIN_MM3: f64 = 500.0;

/// Detection counted over lesions large enough to matter ([`Detection::sized`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SizedDetection {
    /// The smallest truth lesion counted, mm³.
    pub truth_min_mm3: f64,
    /// The smallest predicted component counted, mm³.
    pub pred_min_mm3: f64,
    /// Truth lesions of at least `truth_min_mm3`.
    pub truth_lesions: usize,
    /// Of those, the ones a predicted component of at least `pred_min_mm3` touches.
    pub found: usize,
    /// Predicted components of at least `pred_min_mm3`.
    pub pred_components: usize,
    /// Of those, the ones that touch any truth lesion (of any size).
    pub true_components: usize,
}

impl SizedDetection {
    /// JSON object with the thresholds and the counts.
    pub fn to_json(&self) -> Value {
        json!({
            "truth_min_mm3": self.truth_min_mm3, "pred_min_mm3": self.pred_min_mm3,
            "truth_lesions": self.truth_lesions, "found": self.found,
            "pred_components": self.pred_components, "true_components": self.true_components,
        })
    }
}

impl Detection {
    /// The counts over lesions of a size: a truth lesion of at least `truth_min_mm3` is found
    /// when a predicted component of at least `pred_min_mm3` touches it; such a component is
    /// true when it touches any truth lesion.
    pub fn sized(&self, truth_min_mm3: f64, pred_min_mm3: f64) -> SizedDetection {
        let big_pred =
            |p: u32| self.pred_voxels[p as usize - 1] as f64 * self.voxel_mm3 >= pred_min_mm3;
        let big_truth = |t: u32| self.lesions[t as usize - 1].volume_mm3 >= truth_min_mm3;
        let mut found: Vec<u32> = self
            .touching
            .iter()
            .filter(|&&(p, t)| big_pred(p) && big_truth(t))
            .map(|&(_, t)| t)
            .collect();
        found.sort_unstable();
        found.dedup();
        let mut true_pred: Vec<u32> = self
            .touching
            .iter()
            .filter(|&&(p, _)| big_pred(p))
            .map(|&(p, _)| p)
            .collect();
        true_pred.dedup();
        SizedDetection {
            truth_min_mm3,
            pred_min_mm3,
            truth_lesions: self
                .lesions
                .iter()
                .filter(|l| l.volume_mm3 >= truth_min_mm3)
                .count(),
            found: found.len(),
            pred_components: (1..=self.pred_voxels.len() as u32)
                .filter(|&p| big_pred(p))
                .count(),
            true_components: true_pred.len(),
        }
    }

    /// JSON object with the counts and the rule (per-lesion details under `"lesions"`; the
    /// counts over lesions of >= 1 mL and components of >= 0.5 mL under `"sized"`; what
    /// [`Detection::sized`] needs as `pred_voxels`, `touching` and `voxel_mm3`).
    pub fn to_json(&self) -> Value {
        json!({
            "true_positive": self.true_positive,
            "false_positive": self.false_positive,
            "missed": self.missed,
            "truth_lesions": self.truth_lesions,
            "pred_lesions": self.pred_lesions,
            "rule": self.rule,
            "sized": self.sized(SIZED_TRUTH_MIN_MM3, SIZED_PRED_MIN_MM3).to_json(),
            "pred_voxels": self.pred_voxels,
            "touching": self.touching,
            "voxel_mm3": self.voxel_mm3,
            "lesions": self.lesions.iter().map(|l| json!({
                "label": l.label, "voxels": l.voxels, "volume_mm3": l.volume_mm3,
                "overlap_voxels": l.overlap_voxels, "detected": l.detected,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Counts detected, missed and false-positive lesions (rule in [`Detection`]).
///
/// `spacing` (mm, `[dk, dj, di]`) is used for lesion volumes only.
///
/// # Panics
/// If `pred` and `truth` have different shapes.
pub fn detection(pred: ArrayView3<bool>, truth: ArrayView3<bool>, spacing: [f64; 3]) -> Detection {
    assert_eq!(
        pred.dim(),
        truth.dim(),
        "pred and truth must have the same shape"
    );
    let tr = Runs::new(truth, Connectivity::TwentySix);
    let pr = Runs::new(pred, Connectivity::TwentySix);
    let (nt, np) = (tr.n, pr.n);
    let mut overlap = vec![0u64; nt + 1];
    let mut pred_hits = vec![false; np + 1];
    let mut touching = std::collections::BTreeSet::new();
    // Both run lists are sorted within each row: intersect them with two pointers.
    for r in 0..tr.row_start.len() - 1 {
        let (mut a, a1) = (tr.row_start[r], tr.row_start[r + 1]);
        let (mut b, b1) = (pr.row_start[r], pr.row_start[r + 1]);
        while a < a1 && b < b1 {
            let (ts, te) = tr.runs[a];
            let (ps, pe) = pr.runs[b];
            let len = te.min(pe).saturating_sub(ts.max(ps));
            if len > 0 {
                overlap[tr.label[a] as usize] += len as u64;
                pred_hits[pr.label[b] as usize] = true;
                touching.insert((pr.label[b], tr.label[a]));
            }
            if te <= pe {
                a += 1;
            } else {
                b += 1;
            }
        }
    }
    let sizes = tr.sizes();
    let voxel_mm3 = spacing[0] * spacing[1] * spacing[2];
    let lesions: Vec<TruthLesion> = (1..=nt)
        .map(|l| TruthLesion {
            label: l as u32,
            voxels: sizes[l - 1],
            volume_mm3: sizes[l - 1] as f64 * voxel_mm3,
            overlap_voxels: overlap[l],
            detected: overlap[l] > 0,
        })
        .collect();
    let tp = lesions.iter().filter(|l| l.detected).count();
    let fp = pred_hits[1..].iter().filter(|&&h| !h).count();
    Detection {
        true_positive: tp,
        false_positive: fp,
        missed: nt - tp,
        truth_lesions: nt,
        pred_lesions: np,
        lesions,
        rule: DETECTION_RULE,
        pred_voxels: pr.sizes(),
        touching: touching.into_iter().collect(),
        voxel_mm3,
    }
}
