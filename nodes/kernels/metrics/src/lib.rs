//! Segmentation metrics kernel: Dice, VOE, RVD, ASD, MSD (Hausdorff) and HD95 with the
//! definitions of MedPy 0.5.2 / the LiTS evaluation code, and per-lesion detection. The
//! distance transform, connected components and percentile are voxflow-volume's.
//!
//! Array convention: a volume has shape `(nk, nj, ni)` (slice, row, column) and
//! `spacing` is the voxel size in mm in the same axis order, `[dk, dj, di]`.
//!
//! Definitions (P = prediction, G = truth, both boolean masks on the same grid):
//! * Dice = 2|P∩G| / (|P|+|G|); VOE = 1 − |P∩G|/|P∪G|; RVD = (|P|−|G|)/|G| (signed fraction).
//! * Surface S(A) = A XOR erosion(A) with the 6-connected cross; outside the array
//!   counts as background, so objects touching the border have surface voxels there.
//! * d(x, S) = exact Euclidean distance (mm, voxel centres) from x to the nearest voxel of S.
//! * ASD = (Σ_{p∈S(P)} d(p,S(G)) + Σ_{g∈S(G)} d(g,S(P))) / (|S(P)|+|S(G)|) (pooled, MedPy `assd`).
//! * MSD = max of both directed maxima (symmetric Hausdorff, MedPy `hd`).
//! * HD95 = `numpy.percentile(pooled distances, 95)` with linear interpolation (MedPy `hd95`).
//!
//! Empty masks never produce 0/inf/NaN silently: see [`Undefined`].
//!
//! ```
//! use ndarray::{s, Array3};
//! use voxflow_metrics::binary_metrics;
//!
//! let mut truth = Array3::from_elem((10, 10, 10), false);
//! truth.slice_mut(s![2..5, 2..5, 2..5]).fill(true);
//! let mut pred = Array3::from_elem((10, 10, 10), false);
//! pred.slice_mut(s![2..5, 2..5, 3..6]).fill(true); // shifted by one column
//! let m = binary_metrics(pred.view(), truth.view(), [2.0, 0.7, 0.7]);
//! assert!((m.dice.unwrap() - 2.0 / 3.0).abs() < 1e-12);
//! assert_eq!(m.msd_mm, Ok(0.7));
//! let json = m.to_json(); // {"dice": 0.666.., "asd_mm": .., "hd95_mm": .., ...}
//! assert_eq!(json["msd_mm"], 0.7);
//!
//! let empty = Array3::from_elem((10, 10, 10), false);
//! let m = binary_metrics(empty.view(), truth.view(), [2.0, 0.7, 0.7]);
//! assert_eq!(m.to_json()["asd_mm_note"], "pred empty");
//! ```

#![warn(missing_docs)]

mod detection;

pub use detection::{
    detection, Detection, SizedDetection, TruthLesion, DETECTION_RULE, SIZED_PRED_MIN_MM3,
    SIZED_TRUTH_MIN_MM3,
};
use voxflow_volume::{edt_squared_at, percentile_linear};

use ndarray::{s, Array3, ArrayView1, ArrayView3, Axis};
use rayon::prelude::*;
use serde_json::{Map, Value};

/// Why a metric has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undefined {
    /// The prediction has no voxel (truth has some).
    PredEmpty,
    /// The truth has no voxel (prediction has some).
    TruthEmpty,
    /// Neither mask has a voxel.
    BothEmpty,
}

impl Undefined {
    /// The note written next to a `null` value: "pred empty", "truth empty", "both empty".
    pub fn reason(self) -> &'static str {
        match self {
            Undefined::PredEmpty => "pred empty",
            Undefined::TruthEmpty => "truth empty",
            Undefined::BothEmpty => "both empty",
        }
    }
}

impl std::fmt::Display for Undefined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

/// A metric value, or the reason it is undefined.
pub type Metric = Result<f64, Undefined>;

/// Metrics of one class (one pair of binary masks).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMetrics {
    /// |P|.
    pub pred_voxels: u64,
    /// |G|.
    pub truth_voxels: u64,
    /// |S(P)|, number of prediction surface voxels.
    pub pred_surface_voxels: u64,
    /// |S(G)|, number of truth surface voxels.
    pub truth_surface_voxels: u64,
    /// Dice; 0 if exactly one mask is empty, 1 if both are (LiTS convention).
    pub dice: Metric,
    /// Volumetric overlap error 1 − Jaccard; 1 if exactly one mask is empty, 0 if both are.
    pub voe: Metric,
    /// Relative volume difference (|P|−|G|)/|G|; undefined if the truth is empty.
    pub rvd: Metric,
    /// Average symmetric surface distance (mm, pooled); undefined if either mask is empty.
    pub asd_mm: Metric,
    /// Maximum symmetric surface distance = Hausdorff (mm); undefined if either is empty.
    pub msd_mm: Metric,
    /// 95th percentile of the pooled surface distances (mm); undefined if either is empty.
    pub hd95_mm: Metric,
}

impl ClassMetrics {
    /// JSON object: `pred_voxels`, `truth_voxels`, `pred_surface_voxels`,
    /// `truth_surface_voxels`, `dice`, `voe`, `rvd`, `asd_mm`, `msd_mm`, `hd95_mm`.
    /// An undefined metric is `null` with a `<name>_note` field beside it, e.g.
    /// `"asd_mm": null, "asd_mm_note": "pred empty"`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("pred_voxels".into(), self.pred_voxels.into());
        m.insert("truth_voxels".into(), self.truth_voxels.into());
        m.insert(
            "pred_surface_voxels".into(),
            self.pred_surface_voxels.into(),
        );
        m.insert(
            "truth_surface_voxels".into(),
            self.truth_surface_voxels.into(),
        );
        for (name, v) in [
            ("dice", self.dice),
            ("voe", self.voe),
            ("rvd", self.rvd),
            ("asd_mm", self.asd_mm),
            ("msd_mm", self.msd_mm),
            ("hd95_mm", self.hd95_mm),
        ] {
            match v {
                Ok(x) => {
                    m.insert(name.into(), Value::from(x));
                }
                Err(u) => {
                    m.insert(name.into(), Value::Null);
                    m.insert(format!("{name}_note"), Value::from(u.reason()));
                }
            }
        }
        Value::Object(m)
    }
}

/// Voxel counts and the bounding box of `pred | truth`.
struct Counts {
    pred: u64,
    truth: u64,
    inter: u64,
    lo: [usize; 3],
    hi: [usize; 3],
}

/// (pred, truth, intersection) counts of one row and the `[first, last)` range of `pred | truth`.
fn row_stats(
    pr: ArrayView1<bool>,
    tr: ArrayView1<bool>,
) -> (u64, u64, u64, Option<(usize, usize)>) {
    let (np, nt, ni) = match (pr.as_slice(), tr.as_slice()) {
        (Some(a), Some(b)) => {
            // Branch-free sums so the loop vectorises.
            let (mut np, mut nt, mut ni) = (0u32, 0u32, 0u32);
            for (&p, &t) in a.iter().zip(b) {
                np += p as u32;
                nt += t as u32;
                ni += (p & t) as u32;
            }
            (np as u64, nt as u64, ni as u64)
        }
        _ => pr
            .iter()
            .zip(tr.iter())
            .fold((0, 0, 0), |(np, nt, ni), (&p, &t)| {
                (np + p as u64, nt + t as u64, ni + (p & t) as u64)
            }),
    };
    if np + nt == 0 {
        return (0, 0, 0, None);
    }
    let any = |(p, t): (&bool, &bool)| *p | *t;
    let first = pr.iter().zip(tr.iter()).position(any).unwrap();
    let last = pr.len() - pr.iter().rev().zip(tr.iter().rev()).position(any).unwrap();
    (np, nt, ni, Some((first, last)))
}

fn counts(pred: ArrayView3<bool>, truth: ArrayView3<bool>) -> Counts {
    let init = || Counts {
        pred: 0,
        truth: 0,
        inter: 0,
        lo: [usize::MAX; 3],
        hi: [0; 3],
    };
    let ps: Vec<_> = pred.axis_iter(Axis(0)).collect();
    let ts: Vec<_> = truth.axis_iter(Axis(0)).collect();
    ps.into_par_iter()
        .zip(ts.into_par_iter())
        .enumerate()
        .fold(init, |mut c, (k, (ps, ts))| {
            for (j, (pr, tr)) in ps.outer_iter().zip(ts.outer_iter()).enumerate() {
                let (np, nt, ni, range) = row_stats(pr, tr);
                c.pred += np;
                c.truth += nt;
                c.inter += ni;
                if let Some((first, last)) = range {
                    c.lo = [c.lo[0].min(k), c.lo[1].min(j), c.lo[2].min(first)];
                    c.hi = [c.hi[0].max(k + 1), c.hi[1].max(j + 1), c.hi[2].max(last)];
                }
            }
            c
        })
        .reduce(init, |a, b| Counts {
            pred: a.pred + b.pred,
            truth: a.truth + b.truth,
            inter: a.inter + b.inter,
            lo: [0, 1, 2].map(|d| a.lo[d].min(b.lo[d])),
            hi: [0, 1, 2].map(|d| a.hi[d].max(b.hi[d])),
        })
}

/// Surface voxels (6-connected erosion, outside = background) of the crop `[lo, hi)` of
/// `mask`, returned on a grid padded by one background voxel on every side.
fn padded_surface(mask: ArrayView3<bool>, lo: [usize; 3], hi: [usize; 3]) -> Array3<bool> {
    let crop = mask.slice(s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]]);
    let (nk, nj, ni) = crop.dim();
    let mut pad = Array3::from_elem((nk + 2, nj + 2, ni + 2), false);
    pad.slice_mut(s![1..nk + 1, 1..nj + 1, 1..ni + 1])
        .assign(&crop);
    let mut surf = Array3::from_elem(pad.dim(), false);
    let pv = pad.as_slice().expect("standard layout");
    let (sj, sk) = (ni + 2, (nj + 2) * (ni + 2));
    let slices: Vec<_> = surf.axis_iter_mut(Axis(0)).collect();
    slices.into_par_iter().enumerate().for_each(|(k, mut sl)| {
        if k == 0 || k == nk + 1 {
            return;
        }
        let out = sl.as_slice_mut().expect("standard layout");
        for j in 1..nj + 1 {
            let row = k * sk + j * sj;
            for i in 1..ni + 1 {
                let x = row + i;
                let interior =
                    pv[x - sk] & pv[x + sk] & pv[x - sj] & pv[x + sj] & pv[x - 1] & pv[x + 1];
                out[j * sj + i] = pv[x] & !interior;
            }
        }
    });
    surf
}

/// Distances (mm) from each voxel of `from` to the nearest voxel of `to` (same grid).
fn directed_distances(from: &Array3<bool>, to: &Array3<bool>, spacing: [f64; 3]) -> Vec<f64> {
    let mut d = edt_squared_at(to.view(), from.view(), spacing);
    d.iter_mut().for_each(|x| *x = x.sqrt());
    d
}

/// Surface-to-surface distances (mm) of two non-empty masks.
#[derive(Debug, Clone, PartialEq)]
pub struct SurfaceDistances {
    /// d(p, S(truth)) for every prediction surface voxel p, in raster order.
    pub pred_to_truth: Vec<f64>,
    /// d(g, S(pred)) for every truth surface voxel g, in raster order.
    pub truth_to_pred: Vec<f64>,
}

impl SurfaceDistances {
    /// Mean of each direction: `(pred -> truth, truth -> pred)` (MedPy `asd` is the first).
    pub fn directed_means(&self) -> (f64, f64) {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        (mean(&self.pred_to_truth), mean(&self.truth_to_pred))
    }
}

fn emptiness(np: u64, ng: u64) -> Option<Undefined> {
    match (np == 0, ng == 0) {
        (true, true) => Some(Undefined::BothEmpty),
        (true, false) => Some(Undefined::PredEmpty),
        (false, true) => Some(Undefined::TruthEmpty),
        (false, false) => None,
    }
}

fn surface_distances_in(
    pred: ArrayView3<bool>,
    truth: ArrayView3<bool>,
    spacing: [f64; 3],
    c: &Counts,
) -> SurfaceDistances {
    let (sp, sg) = rayon::join(
        || padded_surface(pred, c.lo, c.hi),
        || padded_surface(truth, c.lo, c.hi),
    );
    let (pred_to_truth, truth_to_pred) = rayon::join(
        || directed_distances(&sp, &sg, spacing),
        || directed_distances(&sg, &sp, spacing),
    );
    SurfaceDistances {
        pred_to_truth,
        truth_to_pred,
    }
}

/// Distances from each surface voxel of one mask to the other mask's surface (surface and
/// distance as in the crate docs), or why they are undefined (a mask is empty).
///
/// # Panics
/// If `pred` and `truth` have different shapes.
pub fn surface_distances(
    pred: ArrayView3<bool>,
    truth: ArrayView3<bool>,
    spacing: [f64; 3],
) -> Result<SurfaceDistances, Undefined> {
    assert_eq!(
        pred.dim(),
        truth.dim(),
        "pred and truth must have the same shape"
    );
    let c = counts(pred, truth);
    match emptiness(c.pred, c.truth) {
        Some(u) => Err(u),
        None => Ok(surface_distances_in(pred, truth, spacing, &c)),
    }
}

/// All metrics of one class; see the crate docs for the definitions.
///
/// The distance transforms run on the bounding box of `pred | truth` plus one voxel,
/// which gives the same distances as the full grid.
///
/// # Panics
/// If `pred` and `truth` have different shapes (geometry must be checked by the caller).
pub fn binary_metrics(
    pred: ArrayView3<bool>,
    truth: ArrayView3<bool>,
    spacing: [f64; 3],
) -> ClassMetrics {
    assert_eq!(
        pred.dim(),
        truth.dim(),
        "pred and truth must have the same shape"
    );
    let c = counts(pred, truth);
    let (np, ng, inter) = (c.pred, c.truth, c.inter);
    let union = np + ng - inter;
    let empty = emptiness(np, ng);
    let (dice, voe) = if union == 0 {
        (Ok(1.0), Ok(0.0))
    } else {
        (
            Ok(2.0 * inter as f64 / (np + ng) as f64),
            Ok(1.0 - inter as f64 / union as f64),
        )
    };
    let rvd = match empty {
        Some(Undefined::BothEmpty) => Err(Undefined::BothEmpty),
        Some(Undefined::TruthEmpty) => Err(Undefined::TruthEmpty),
        _ => Ok((np as f64 - ng as f64) / ng as f64),
    };
    let mut m = ClassMetrics {
        pred_voxels: np,
        truth_voxels: ng,
        pred_surface_voxels: 0,
        truth_surface_voxels: 0,
        dice,
        voe,
        rvd,
        asd_mm: Err(Undefined::BothEmpty),
        msd_mm: Err(Undefined::BothEmpty),
        hd95_mm: Err(Undefined::BothEmpty),
    };
    if let Some(u) = empty {
        m.asd_mm = Err(u);
        m.msd_mm = Err(u);
        m.hd95_mm = Err(u);
        return m;
    }
    let SurfaceDistances {
        pred_to_truth: d_pg,
        truth_to_pred: d_gp,
    } = surface_distances_in(pred, truth, spacing, &c);
    m.pred_surface_voxels = d_pg.len() as u64;
    m.truth_surface_voxels = d_gp.len() as u64;
    let mut all = d_pg;
    all.extend_from_slice(&d_gp);
    let sum: f64 = all.iter().sum();
    let max = all.iter().copied().fold(0.0, f64::max);
    m.asd_mm = Ok(sum / all.len() as f64);
    m.msd_mm = Ok(max);
    m.hd95_mm = Ok(percentile_linear(&mut all, 95.0).expect("both surfaces are non-empty"));
    m
}
