//! The liver mask shared by `crop_resample` and `paste_back`, and class lookup in stream metadata.

use ndarray::{Array3, Axis};
use serde::Deserialize;
use voxflow_runtime::stream::{Header, Meta, SliceData, StreamType};
use voxflow_runtime::{NodeParams, Slice, Volume};

/// Header metadata key: class names of a prob stream, one per channel (set by `fcn`).
pub const META_CLASSES: &str = "classes";
/// Slice metadata key: the crop box `[j0, j1, i0, i1]` (rows `j0..j1`, columns `i0..i1`, end
/// exclusive) in the full slice (set by `crop_resample`).
pub const META_ROI: &str = "roi";
/// Header metadata key: `[nj, ni]` of the full slices a crop stream was cut from.
pub const META_FULL_SLICE: &str = "full_slice";

/// Class names of a prob stream, if its header carries them.
pub fn classes(h: &Header) -> Option<Vec<String>> {
    let a = h.meta.get(META_CLASSES)?.as_array()?;
    a.iter().map(|v| v.as_str().map(String::from)).collect()
}

/// The channel of class `name` in a prob stream: `explicit` if set, else the channel named
/// `name` in the header's class list, else `fallback` for a 2-channel stream without names.
pub fn class_channel(
    h: &Header,
    name: &str,
    explicit: Option<usize>,
    port: &str,
) -> Result<usize, String> {
    let c = h.channels;
    if let Some(ch) = explicit {
        if ch >= c {
            return Err(format!(
                "input `{port}`: channel {ch} requested but the stream has {c} channels"
            ));
        }
        return Ok(ch);
    }
    match classes(h) {
        Some(names) => names.iter().position(|n| n == name).ok_or_else(|| {
            format!(
                "input `{port}`: no class `{name}` among the stream's classes {names:?}; \
                 is the right model connected? (set the channel param to override)"
            )
        }),
        None if c == 2 => Ok(1),
        None => Err(format!(
            "input `{port}`: a {c}-channel prob stream without class names; set the channel param"
        )),
    }
}

/// Settings that turn a liver stream into the cascade's liver mask: params of both
/// `crop_resample` and `paste_back` (flattened into theirs), so both build the same mask.
#[derive(Clone, Debug, Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct MaskSpec {
    /// liver probability threshold
    #[param(default = 0.5, min = 0, max = 1)]
    pub threshold: f32,
    /// keep only the largest 3D connected component
    #[param(default = true)]
    pub largest_component: bool,
    /// liver channel of a prob input
    pub channel: Option<usize>,
    /// radius (mm) of a per-slice closing of the liver mask, so lesions biting into the liver
    /// edge stay inside it; 0 = off
    #[param(default = 0.0, min = 0)]
    pub close_mm: f64,
}

/// A liver stream read slice by slice into what the liver mask needs, so that the 2-channel
/// probabilities are never held whole: per slice the liver probability (prob stream: the liver
/// channel; label stream: 1 where the label is non-zero), kept only when asked, and whether it
/// is above the threshold. Slices the stream does not send stay 0.
pub struct LiverSlices {
    /// The liver channel of a prob stream; `None` for a label stream.
    channel: Option<usize>,
    threshold: f32,
    prob: Option<Array3<f32>>,
    above: Array3<bool>,
    slice_meta: Vec<Option<Meta>>,
}

impl LiverSlices {
    /// For the stream of header `h` (input `port`); `keep_prob` keeps the probabilities too.
    pub fn new(h: &Header, spec: &MaskSpec, port: &str, keep_prob: bool) -> Result<Self, String> {
        let channel = match h.stream_type {
            StreamType::Prob => Some(class_channel(h, "liver", spec.channel, port)?),
            StreamType::Label => None,
            StreamType::Image => {
                return Err(format!(
                    "input `{port}` carries an image stream; it needs liver probabilities (prob) or a label"
                ))
            }
        };
        let [nk, nj, ni] = h.shape;
        Ok(LiverSlices {
            channel,
            threshold: spec.threshold,
            prob: keep_prob.then(|| Array3::zeros((nk, nj, ni))),
            above: Array3::from_elem((nk, nj, ni), false),
            slice_meta: vec![None; nk],
        })
    }

    /// Files slice `s` (checked against the header by the runtime).
    pub fn put(&mut self, s: &Slice) {
        let k = s.index;
        // A prob slice's channel is read in place; a label slice becomes 0/1 floats.
        let from_label;
        let p = match (&s.data, self.channel) {
            (SliceData::Prob(a), Some(ch)) => a.index_axis(Axis(0), ch),
            (SliceData::Label(l), None) => {
                from_label = l.mapv(|x| if x > 0 { 1.0f32 } else { 0.0 });
                from_label.view()
            }
            _ => unreachable!("the stream type was checked by the header"),
        };
        let t = self.threshold;
        self.above
            .index_axis_mut(Axis(0), k)
            .zip_mut_with(&p, |m, &x| *m = x > t);
        if let Some(prob) = &mut self.prob {
            prob.index_axis_mut(Axis(0), k).assign(&p);
        }
        self.slice_meta[k] = Some(s.meta.clone());
    }

    /// Per-slice metadata of the slices received (`None` where none came).
    pub fn slice_meta(&self) -> &[Option<Meta>] {
        &self.slice_meta
    }

    /// The probabilities (when kept) and the mask: above the threshold, then the largest
    /// 26-connected component if asked, then each slice closed with a disk of `close_mm`
    /// (in-plane `spacing` `[dj, di]`).
    pub fn finish(self, spec: &MaskSpec, spacing: [f64; 2]) -> (Option<Array3<f32>>, Array3<bool>) {
        let mut m = self.above;
        if spec.largest_component {
            m = voxflow_metrics::components::largest_component(m.view());
        }
        if spec.close_mm > 0.0 {
            m = close_slices(&m, spacing, spec.close_mm);
        }
        (self.prob, m)
    }
}

/// Liver probability and mask of a whole liver volume, as [`LiverSlices`] makes them.
pub fn liver_mask(
    v: &Volume,
    spec: &MaskSpec,
    port: &str,
) -> Result<(Array3<f32>, Array3<bool>), String> {
    let mut slices = LiverSlices::new(&v.header, spec, port, true)?;
    for k in 0..v.header.num_slices() {
        slices.put(&Slice::new(k, v.slice(k)));
    }
    let (p, m) = slices.finish(spec, [v.header.spacing[1], v.header.spacing[2]]);
    Ok((p.expect("kept"), m))
}

/// Per-slice morphological closing (dilation then erosion) with a disk of radius `r_mm`,
/// in mm with the in-plane `spacing` `[dj, di]`; the result contains the mask and a slice
/// without liver stays empty. Exact Euclidean distances, computed on each slice's bounding box
/// grown by the radius (plus one pixel). Outside the slice counts as dilated, so the erosion
/// does not eat in from the slice border.
pub fn close_slices(m: &Array3<bool>, spacing: [f64; 2], r_mm: f64) -> Array3<bool> {
    let (_, nj, ni) = m.dim();
    let r2 = r_mm * r_mm;
    let pad = [
        (r_mm / spacing[0]).ceil() as usize + 1,
        (r_mm / spacing[1]).ceil() as usize + 1,
    ];
    let sp = [1.0, spacing[0], spacing[1]];
    let mut out = m.clone();
    for (mk, mut ok) in m.axis_iter(Axis(0)).zip(out.axis_iter_mut(Axis(0))) {
        let (mut j0, mut j1, mut i0, mut i1) = (usize::MAX, 0, usize::MAX, 0);
        for ((j, i), &x) in mk.indexed_iter() {
            if x {
                (j0, j1, i0, i1) = (j0.min(j), j1.max(j + 1), i0.min(i), i1.max(i + 1));
            }
        }
        if j0 == usize::MAX {
            continue;
        }
        // The grown box, with a virtual margin beyond the slice edge where needed.
        let (gj0, gi0) = (j0 as isize - pad[0] as isize, i0 as isize - pad[1] as isize);
        let (h, w) = (j1 - j0 + 2 * pad[0], i1 - i0 + 2 * pad[1]);
        let inside = |j: usize, i: usize| {
            let (y, x) = (gj0 + j as isize, gi0 + i as isize);
            (y >= 0 && x >= 0 && (y as usize) < nj && (x as usize) < ni)
                .then_some((y as usize, x as usize))
        };
        let mut local = Array3::from_elem((1, h, w), false);
        for ((_, j, i), v) in local.indexed_iter_mut() {
            *v = inside(j, i).is_some_and(|(y, x)| mk[[y, x]]);
        }
        let dilated = voxflow_metrics::edt_squared(local.view(), sp).mapv(|d| d <= r2);
        // Outside the slice counts as dilated: only in-slice undilated pixels erode.
        let mut background = Array3::from_elem((1, h, w), false);
        for ((_, j, i), v) in background.indexed_iter_mut() {
            *v = inside(j, i).is_some() && !dilated[[0, j, i]];
        }
        let eroded = voxflow_metrics::edt_squared(background.view(), sp);
        for ((_, j, i), &d) in eroded.indexed_iter() {
            if d > r2 {
                if let Some((y, x)) = inside(j, i) {
                    ok[[y, x]] = true;
                }
            }
        }
    }
    out
}

/// Checks that a liver stream is prob or label and has the geometry of `reference`.
pub fn check_liver_header(
    h: &Header,
    reference: &Header,
    port: &str,
    ref_port: &str,
) -> Result<(), String> {
    if h.stream_type == StreamType::Image {
        return Err(format!("input `{port}` carries an image stream; it needs liver probabilities (prob) or a label"));
    }
    if h.shape != reference.shape {
        return Err(format!(
            "input `{port}` has shape {:?} but `{ref_port}` has {:?} (both [nk, nj, ni])",
            h.shape, reference.shape
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 41x41 disk of radius 15 px with a bite 4 px wide cut in from its right edge, on
    /// slice 1 of 3.
    fn bitten_disk() -> Array3<bool> {
        let mut m = Array3::from_elem((3, 41, 41), false);
        for j in 0..41 {
            for i in 0..41 {
                let (y, x) = (j as f64 - 20.0, i as f64 - 20.0);
                let bite = (18..=22).contains(&j) && i >= 26;
                m[[1, j, i]] = y * y + x * x <= 225.0 && !bite;
            }
        }
        m
    }

    #[test]
    fn closing_fills_a_bite_wider_than_nothing_narrower_than_the_disk() {
        let m = bitten_disk();
        // 1 mm pixels: the bite is 5 px = 5 mm wide, so a 3 mm disk closes it.
        let c = close_slices(&m, [1.0, 1.0], 3.0);
        assert!(c[[1, 20, 30]], "bite not filled");
        assert!(
            m.iter().zip(c.iter()).all(|(&a, &b)| !a || b),
            "closing lost mask voxels"
        );
        assert!(
            c.index_axis(Axis(0), 0).iter().all(|&x| !x),
            "empty slice gained voxels"
        );
        assert!(
            c.index_axis(Axis(0), 2).iter().all(|&x| !x),
            "empty slice gained voxels"
        );
        // Far from the bite nothing is added.
        assert!(!c[[1, 0, 0]] && !c[[1, 40, 40]]);
        // A 1 mm disk cannot bridge a 5 mm gap.
        let thin = close_slices(&m, [1.0, 1.0], 1.0);
        assert!(!thin[[1, 20, 30]], "1 mm closing filled a 5 mm bite");
    }

    #[test]
    fn closing_radius_is_in_millimetres() {
        let m = bitten_disk();
        // 0.5 mm rows: the bite is 2.5 mm tall, so a 1.5 mm disk closes it, which in 1 mm
        // pixels (5 mm bite) it does not.
        assert!(close_slices(&m, [0.5, 1.0], 1.5)[[1, 20, 30]]);
        assert!(!close_slices(&m, [1.0, 1.0], 1.5)[[1, 20, 30]]);
    }
}
