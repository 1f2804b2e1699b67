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
            m = voxflow_volume::largest_component(m.view());
        }
        if spec.close_mm > 0.0 {
            m = voxflow_volume::close_slices(&m, spacing, spec.close_mm);
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
