//! Per-slice header checks: what a volume can hold (transfer syntax, one channel, bits,
//! rescale).

use super::*;

pub(super) fn check_transfer_syntax(obj: &DefaultDicomObject) -> Result<(), String> {
    let uid = obj.meta().transfer_syntax();
    match TransferSyntaxRegistry.get(uid) {
        Some(ts) if ts.can_decode_all() => Ok(()),
        Some(ts) => Err(format!(
            "transfer syntax {} ({}) is not supported; voxflow reads uncompressed, deflated, RLE, \
             JPEG, JPEG-LS and JPEG 2000 pixel data",
            ts.name(),
            ts.uid()
        )),
        None => Err(format!("unknown transfer syntax {uid}")),
    }
}

/// One sample per pixel in a grey-scale interpretation. MONOCHROME1 (low values shown white)
/// is read as its modality values, like MONOCHROME2: the inversion is a display step and CT
/// numbers stay Hounsfield units.
pub(super) fn check_single_channel(obj: &DefaultDicomObject) -> Result<(), String> {
    let photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    let samples = int(obj, tags::SAMPLES_PER_PIXEL);
    if samples != Some(1) {
        let n = samples.map_or("no".into(), |s| s.to_string());
        return Err(format!(
            "{n} samples per pixel (PhotometricInterpretation {photometric:?}): only single-channel \
             grey-scale slices can be read into a volume"
        ));
    }
    if !matches!(photometric.as_str(), "MONOCHROME1" | "MONOCHROME2") {
        return Err(format!(
            "PhotometricInterpretation {photometric:?} is not grey-scale (MONOCHROME1 or MONOCHROME2)"
        ));
    }
    Ok(())
}

/// BitsAllocated 8, 16 or 32, and BitsStored from 1 to BitsAllocated (the decoder's range).
pub(super) fn check_bits(obj: &DefaultDicomObject) -> Result<(), String> {
    let allocated = int(obj, tags::BITS_ALLOCATED);
    if !matches!(allocated, Some(8 | 16 | 32)) {
        let a = allocated.map_or("missing".into(), |a| a.to_string());
        return Err(format!(
            "BitsAllocated {a}: only 8, 16 or 32 bits per sample can be read"
        ));
    }
    let stored = int(obj, tags::BITS_STORED);
    match (stored, allocated) {
        (Some(s), Some(a)) if (1..=a).contains(&s) => Ok(()),
        _ => Err(format!(
            "BitsStored {} does not fit BitsAllocated {}",
            stored.map_or("missing".into(), |s| s.to_string()),
            allocated.unwrap_or_default()
        )),
    }
}

/// RescaleSlope / RescaleIntercept, when present, must be finite and the slope non-zero.
pub(super) fn check_rescale(obj: &DefaultDicomObject) -> Result<(), String> {
    if let Some(v) = numbers(obj, tags::RESCALE_SLOPE, "RescaleSlope", 1)? {
        if !(v[0].is_finite() && v[0] != 0.0) {
            return Err(format!(
                "RescaleSlope {} is not a finite non-zero factor",
                v[0]
            ));
        }
    }
    if let Some(v) = numbers(obj, tags::RESCALE_INTERCEPT, "RescaleIntercept", 1)? {
        if !v[0].is_finite() {
            return Err(format!("RescaleIntercept {} is not finite", v[0]));
        }
    }
    Ok(())
}
