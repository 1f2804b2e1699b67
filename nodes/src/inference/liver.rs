//! The liver mask shared by `crop_resample` and `paste_back`, and class lookup in stream metadata.

use ndarray::{Array3, Axis};
use voxflow_runtime::decl::ParamType;
use voxflow_runtime::stream::{Header, StreamType, VolumeData};
use voxflow_runtime::{NodeDecl, Params, Volume};

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

/// Settings that turn a liver stream into the cascade's liver mask.
#[derive(Clone, Debug)]
pub struct MaskSpec {
    pub threshold: f32,
    pub largest_component: bool,
    /// Liver channel of a prob stream (`None`: by class name).
    pub channel: Option<usize>,
}

impl MaskSpec {
    /// Declares the params that define the liver mask; `crop_resample` and `paste_back` both use
    /// this, so their masks are built from the same settings.
    pub fn declare(d: NodeDecl) -> NodeDecl {
        d.param(
            "threshold",
            ParamType::Float {
                min: Some(0.0),
                max: Some(1.0),
            },
            0.5,
            "liver probability threshold",
        )
        .param(
            "largest_component",
            ParamType::Bool,
            true,
            "keep only the largest 3D connected component",
        )
        .optional(
            "channel",
            ParamType::Int {
                min: Some(0),
                max: None,
            },
            "liver channel of a prob input",
        )
    }

    /// Reads the params declared by [`MaskSpec::declare`].
    pub fn from_params(p: &Params) -> Result<Self, String> {
        Ok(MaskSpec {
            threshold: p.f64("threshold")? as f32,
            largest_component: p.bool("largest_component")?,
            channel: p.get("channel").map(|_| p.usize("channel")).transpose()?,
        })
    }
}

/// Liver probability (prob stream: the liver channel; label stream: 1 where the label is
/// non-zero) and the liver mask (probability > threshold, then the largest 26-connected
/// component if asked), both `(nk, nj, ni)`.
pub fn liver_mask(
    v: &Volume,
    spec: &MaskSpec,
    port: &str,
) -> Result<(Array3<f32>, Array3<bool>), String> {
    let p = match &v.data {
        VolumeData::Prob(p) => {
            let ch = class_channel(&v.header, "liver", spec.channel, port)?;
            p.index_axis(Axis(1), ch).to_owned()
        }
        VolumeData::Label(l) => l.mapv(|x| if x > 0 { 1.0 } else { 0.0 }),
        VolumeData::Image(_) => {
            return Err(format!(
                "input `{port}` carries an image stream; it needs liver probabilities (prob) or a label"
            ))
        }
    };
    let t = spec.threshold;
    let mut m = p.mapv(|x| x > t);
    if spec.largest_component {
        m = voxflow_metrics::components::largest_component(m.view());
    }
    Ok((p, m))
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
