//! Histogram sharpening of N4 (`N4BiasFieldCorrectionImageFilter::SharpenImage`): Wiener
//! deconvolution of a Gaussian from the Parzen-windowed histogram of the log intensities, then
//! the conditional-mean mapping E(u|v) applied to every value.

use rustfft::{num_complex::Complex, FftPlanner};

/// Sharpening parameters.
#[derive(Clone, Copy, Debug)]
pub struct SharpenParams {
    pub bins: usize,
    pub fwhm: f64,
    pub wiener_noise: f64,
}

/// Returns the sharpened value of every entry of `values` (the masked log intensities, in
/// image buffer order: ITK's min/max scan depends on the order).
/// Caller guarantees `values` is non-empty, not constant and `bins >= 2`.
pub fn sharpen(values: &[f64], p: &SharpenParams) -> Vec<f64> {
    let (bin_min, slope, e) = mapping(values, p);
    let nb = e.len();
    values
        .iter()
        .map(|&v| {
            let cidx = (v - bin_min) / slope;
            let idx = cidx.floor();
            if idx >= 0.0 && (idx as usize) < nb - 1 {
                let i = idx as usize;
                e[i] + (e[i + 1] - e[i]) * (cidx - idx)
            } else {
                e[nb - 1]
            }
        })
        .collect()
}

/// Histogram minimum, bin width and the mapping E (one value per bin).
pub fn mapping(values: &[f64], p: &SharpenParams) -> (f64, f64, Vec<f64>) {
    // ITK's scan: `if (v > max) max = v; else if (v < min) min = v;` (kept as is).
    let mut bin_max = f64::MIN;
    let mut bin_min = f64::MAX;
    for &v in values {
        if v > bin_max {
            bin_max = v;
        } else if v < bin_min {
            bin_min = v;
        }
    }
    let nb = p.bins;
    let slope = (bin_max - bin_min) / (nb - 1) as f64;

    // Parzen (triangular) histogram.
    let mut h = vec![0.0f64; nb];
    for &v in values {
        let cidx = (v - bin_min) / slope;
        let fl = cidx.floor();
        let off = cidx - fl;
        // ITK casts floor() to unsigned; values below bin_min (first-pixel quirk) wrap to a
        // huge index, so they are dropped unless the offset is exactly 0.
        if fl < 0.0 {
            continue;
        }
        let idx = fl as usize;
        if off == 0.0 {
            if idx < nb {
                h[idx] += 1.0;
            }
        } else if idx < nb - 1 {
            h[idx] += 1.0 - off;
            h[idx + 1] += off;
        }
    }

    let exponent = ((nb as f64).ln() / 2f64.ln()).ceil() + 1.0;
    let padded = (2f64.powf(exponent) + 0.5) as usize;
    let offset = ((padded - nb) as f64 * 0.5) as usize;

    let mut planner = FftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(padded);
    let bwd = planner.plan_fft_inverse(padded);
    let zero = Complex::new(0.0, 0.0);

    let mut vf = vec![zero; padded];
    for (n, &x) in h.iter().enumerate() {
        vf[n + offset] = Complex::new(x, 0.0);
    }
    fwd.process(&mut vf);

    // Gaussian of the bias field (in bins).
    let scaled_fwhm = p.fwhm / slope;
    let exp_factor = 4.0 * 2f64.ln() / (scaled_fwhm * scaled_fwhm);
    let scale_factor = 2.0 * (2f64.ln() / std::f64::consts::PI).sqrt() / scaled_fwhm;
    let mut ff = vec![zero; padded];
    ff[0] = Complex::new(scale_factor, 0.0);
    let half = padded / 2;
    for n in 1..=half {
        let v = Complex::new(scale_factor * (-((n * n) as f64) * exp_factor).exp(), 0.0);
        ff[n] = v;
        ff[padded - n] = v;
    }
    if padded.is_multiple_of(2) {
        ff[half] = Complex::new(
            scale_factor * (0.25 * -((padded * padded) as f64) * exp_factor).exp(),
            0.0,
        );
    }
    fwd.process(&mut ff);

    // Wiener filter (real part only, as ITK) applied to the histogram.
    let mut u: Vec<Complex<f64>> = vf
        .iter()
        .zip(&ff)
        .map(|(v, f)| {
            let c = f.conj();
            let g = c / (c * f + p.wiener_noise);
            v * g.re
        })
        .collect();
    bwd.process(&mut u);
    for x in u.iter_mut() {
        *x = Complex::new(x.re.max(0.0), 0.0);
    }

    // E(u|v) = (G * (u U)) / (G * U)
    let mut num: Vec<Complex<f64>> = u
        .iter()
        .enumerate()
        .map(|(n, x)| Complex::new((bin_min + (n as f64 - offset as f64) * slope) * x.re, 0.0))
        .collect();
    fwd.process(&mut num);
    num.iter_mut().zip(&ff).for_each(|(a, f)| *a *= f);
    bwd.process(&mut num);
    let mut den = u;
    fwd.process(&mut den);
    den.iter_mut().zip(&ff).for_each(|(a, f)| *a *= f);
    bwd.process(&mut den);

    let e: Vec<f64> = (offset..offset + nb)
        .map(|n| {
            if den[n].re != 0.0 {
                num[n].re / den[n].re
            } else {
                0.0
            }
        })
        .collect();
    (bin_min, slope, e)
}
