//! Per-lesion detection counts by 3-D connected components.

use crate::components::{Connectivity, Runs};
use ndarray::ArrayView3;
use serde_json::{json, Value};

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
}

impl Detection {
    /// JSON object with the counts and the rule (per-lesion details under `"lesions"`).
    pub fn to_json(&self) -> Value {
        json!({
            "true_positive": self.true_positive,
            "false_positive": self.false_positive,
            "missed": self.missed,
            "truth_lesions": self.truth_lesions,
            "pred_lesions": self.pred_lesions,
            "rule": self.rule,
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
    }
}
