//! First-order statistics, as PyRadiomics `firstorder` (voxelArrayShift 0).
//! Entropy and Uniformity use the discretised levels, the rest the raw intensities.

use crate::roi::Roi;
use crate::EPS;
use voxflow_volume::percentile_sorted;

pub(crate) const NAMES: &[&str] = &[
    "10Percentile",
    "90Percentile",
    "Energy",
    "Entropy",
    "InterquartileRange",
    "Kurtosis",
    "Maximum",
    "MeanAbsoluteDeviation",
    "Mean",
    "Median",
    "Minimum",
    "Range",
    "RobustMeanAbsoluteDeviation",
    "RootMeanSquared",
    "Skewness",
    "TotalEnergy",
    "Uniformity",
    "Variance",
];

pub(crate) fn compute(roi: &Roi, spacing: [f64; 3]) -> Vec<f64> {
    let v = &roi.values;
    let n = v.len() as f64;
    let mut sorted = v.clone();
    sorted.sort_unstable_by(|a, b| a.partial_cmp(b).unwrap());
    let min = sorted[0];
    let max = *sorted.last().unwrap();
    // numpy "linear"; exact ties matter for the robust MAD, which keeps values in [p10, p90].
    let percentile = |q| percentile_sorted(&sorted, q).expect("the ROI has voxels");
    let p10 = percentile(10.0);
    let p90 = percentile(90.0);
    let p25 = percentile(25.0);
    let p75 = percentile(75.0);
    let median = percentile(50.0);
    let energy: f64 = v.iter().map(|x| x * x).sum();
    let mean = v.iter().sum::<f64>() / n;
    let (mut m2, mut m3, mut m4, mut mad) = (0.0, 0.0, 0.0, 0.0);
    for &x in v {
        let d = x - mean;
        let d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
        m4 += d2 * d2;
        mad += d.abs();
    }
    m2 /= n;
    m3 /= n;
    m4 /= n;
    mad /= n;
    let (skew, kurt) = if m2 == 0.0 {
        (0.0, 0.0)
    } else {
        (m3 / m2.powf(1.5), m4 / (m2 * m2))
    };
    // Robust MAD: values within [p10, p90].
    let robust: Vec<f64> = v
        .iter()
        .cloned()
        .filter(|&x| x >= p10 && x <= p90)
        .collect();
    let rmean = robust.iter().sum::<f64>() / robust.len() as f64;
    let rmad = robust.iter().map(|x| (x - rmean).abs()).sum::<f64>() / robust.len() as f64;
    // Histogram of the discretised levels.
    let mut counts = vec![0f64; roi.n_levels()];
    for &q in &roi.vox {
        counts[roi.plvl[q] as usize] += 1.0;
    }
    let (mut entropy, mut uniformity) = (0.0, 0.0);
    for c in counts {
        let p = c / n;
        entropy -= p * (p + EPS).log2();
        uniformity += p * p;
    }
    let voxel = spacing[0] * spacing[1] * spacing[2];
    vec![
        p10,
        p90,
        energy,
        entropy,
        p75 - p25,
        kurt,
        max,
        mad,
        mean,
        median,
        min,
        max - min,
        rmad,
        (energy / n).sqrt(),
        skew,
        energy * voxel,
        uniformity,
        m2,
    ]
}
