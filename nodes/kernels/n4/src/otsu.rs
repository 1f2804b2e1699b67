//! Otsu foreground mask as SimpleITK's `OtsuThreshold(image, 0, 1, bins)`.

use ndarray::{Array3, ArrayView3, Zip};

/// Otsu threshold as ITK's `OtsuThresholdImageFilter` computes it: histogram of `bins` bins
/// over `[min, max + (max - min) / bins / 100]` (ITK's marginal scale 100), bin centres as
/// measurements, first maximum of the between-class variance, threshold = upper edge of the
/// last bin of the lower class. Returns `None` for an empty or constant image (or bins < 2).
pub fn otsu_threshold(image: ArrayView3<f32>, bins: usize) -> Option<f32> {
    if bins < 2 || image.is_empty() {
        return None;
    }
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in image.iter() {
        if v < lo {
            lo = v;
        }
        if v > hi {
            hi = v;
        }
    }
    if hi <= lo || !lo.is_finite() || !hi.is_finite() {
        return None;
    }
    let lower = lo as f64;
    let upper = hi as f64 + (hi as f64 - lower) / bins as f64 / 100.0;
    let interval = (upper - lower) / bins as f64;
    let edge_min = |j: usize| lower + j as f64 * interval;
    let edge_max = |j: usize| {
        if j + 1 == bins {
            upper
        } else {
            lower + (j + 1) as f64 * interval
        }
    };
    let mut freq = vec![0.0f64; bins];
    for &v in image.iter() {
        let v = v as f64;
        let mut j = (((v - lower) / interval).floor().max(0.0) as usize).min(bins - 1);
        // settle on the bin with min <= v < max, as ITK's bin search does
        while j > 0 && v < edge_min(j) {
            j -= 1;
        }
        while j + 1 < bins && v >= edge_max(j) {
            j += 1;
        }
        freq[j] += 1.0;
    }
    let centre = |j: usize| (edge_min(j) + edge_max(j)) / 2.0;
    let total: f64 = freq.iter().sum();
    let global_mean = freq
        .iter()
        .enumerate()
        .map(|(j, f)| centre(j) * f)
        .sum::<f64>()
        / total;

    // one threshold: class 0 = bins 0..=t, class 1 = the rest
    let mut f0 = freq[0];
    let mut m0 = if f0 > 0.0 { centre(0) } else { 0.0 };
    let class1 = |f0: f64, m0: f64| {
        let f1 = total - f0;
        let m1 = if f1 > 0.0 {
            (global_mean * total - m0 * f0) / f1
        } else {
            0.0
        };
        (f1, m1)
    };
    let (f1, m1) = class1(f0, m0);
    let mut best = (f0 * m0 * m0 + f1 * m1 * m1) / total;
    let mut best_t = 0usize;
    for (t, &ft) in freq.iter().enumerate().take(bins - 1).skip(1) {
        let (fo, mo) = (f0, m0);
        f0 += ft;
        m0 = if f0 > 0.0 {
            (mo * fo + centre(t) * ft) / f0
        } else {
            0.0
        };
        let (f1, m1) = class1(f0, m0);
        let var = (f0 * m0 * m0 + f1 * m1 * m1) / total;
        if var > best && !almost_equal_1ulp(best, var) {
            best = var;
            best_t = t;
        }
    }
    Some(edge_max(best_t) as f32)
}

fn almost_equal_1ulp(a: f64, b: f64) -> bool {
    if a == b {
        return true;
    }
    if a.signum() != b.signum() {
        return false;
    }
    (a.to_bits() as i64 - b.to_bits() as i64).abs() <= 1
}

/// `true` where the voxel is above the Otsu threshold (SimpleITK `OtsuThreshold(image, 0, 1,
/// bins)` == 1). All `false` for a constant or empty image.
pub fn otsu_mask(image: ArrayView3<f32>, bins: usize) -> Array3<bool> {
    match otsu_threshold(image, bins) {
        Some(t) => {
            let mut m = Array3::from_elem(image.raw_dim(), false);
            Zip::from(&mut m).and(&image).for_each(|m, &v| *m = v > t);
            m
        }
        None => Array3::from_elem(image.raw_dim(), false),
    }
}
