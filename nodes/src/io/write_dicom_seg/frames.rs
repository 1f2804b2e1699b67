//! Which frames a segmentation stores (empty ones omitted) and their packed bits.

use super::*;

/// Every label must be 0, 1 or 2.
pub(super) fn check_values(labels: &Array3<u8>) -> Result<(), String> {
    for (k, plane) in labels.outer_iter().enumerate() {
        if let Some(v) = plane.iter().find(|&&v| v > 2) {
            return Err(format!(
                "label value {v} in slice {k}: a DICOM SEG is written from 0 background, \
                 1 liver, 2 lesion"
            ));
        }
    }
    Ok(())
}

/// The segment numbers: 1 liver, 2 lesion.
pub(super) const SEGMENTS: [u16; 2] = [1, 2];

/// Whether label value `v` belongs to `segment` (liver: >= 1, lesion: 2).
pub(super) fn inside(segment: u16, v: u8) -> bool {
    if segment == 1 {
        v >= 1
    } else {
        v == 2
    }
}

/// The frames to write, `(segment number, slice k)` in segment-then-slice order: the frames
/// with at least one pixel, or every frame when all are empty.
pub fn frames(labels: &Array3<u8>) -> Vec<(u16, usize)> {
    let nk = labels.len_of(Axis(0));
    let all: Vec<(u16, usize)> = SEGMENTS
        .iter()
        .flat_map(|&s| (0..nk).map(move |k| (s, k)))
        .collect();
    let present: Vec<(u16, usize)> = all
        .iter()
        .copied()
        .filter(|&(s, k)| labels.index_axis(Axis(0), k).iter().any(|&v| inside(s, v)))
        .collect();
    if present.is_empty() {
        all
    } else {
        present
    }
}

/// The frames' masks as one bit stream (first pixel in the lowest bit, no padding between
/// frames), padded to an even byte count.
pub fn pack_frames(labels: &Array3<u8>, frames: &[(u16, usize)]) -> Vec<u8> {
    let (_, nj, ni) = labels.dim();
    let bits = frames.len() * nj * ni;
    let mut out = vec![0u8; bits.div_ceil(8).next_multiple_of(2)];
    let mut b = 0;
    for &(s, k) in frames {
        for &v in labels.index_axis(Axis(0), k).iter() {
            if inside(s, v) {
                out[b / 8] |= 1 << (b % 8);
            }
            b += 1;
        }
    }
    out
}
