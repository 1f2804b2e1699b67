//! Typed slice streams: a header, slices in index order (possibly sparse), an end marker.

use ndarray::{Array2, Array3, Array4, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The kind of data an edge carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamType {
    /// Scalar float32 volume.
    Image,
    /// uint8 label volume.
    Label,
    /// C-channel float32 probability volume.
    Prob,
}

impl StreamType {
    pub fn name(self) -> &'static str {
        match self {
            StreamType::Image => "image",
            StreamType::Label => "label",
            StreamType::Prob => "prob",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "image" => Some(StreamType::Image),
            "label" => Some(StreamType::Label),
            "prob" => Some(StreamType::Prob),
            _ => None,
        }
    }
}

impl fmt::Display for StreamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Free-form metadata that nodes pass on unchanged unless they own a key.
pub type Meta = BTreeMap<String, serde_json::Value>;

/// Describes a whole stream; sent once before the first slice.
///
/// Arrays use the layout `(nk, nj, ni)`: axis 0 is the slice index k, axis 1 the row j,
/// axis 2 the column i. Voxel `(i, j, k)` of the source is element `[k, j, i]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub stream_type: StreamType,
    /// `[nk, nj, ni]`.
    pub shape: [usize; 3],
    /// Number of channels: 1 for image and label, C for prob.
    pub channels: usize,
    /// Voxel size in mm in array-axis order `[dk, dj, di]`.
    pub spacing: [f64; 3],
    /// Maps voxel `(i, j, k, 1)` to world coordinates in mm (their convention is the source's).
    pub affine: [[f64; 4]; 4],
    /// Declared value range of the data where known (e.g. a window).
    pub value_range: Option<(f64, f64)>,
    pub meta: Meta,
}

impl Header {
    pub fn new(stream_type: StreamType, shape: [usize; 3], spacing: [f64; 3]) -> Self {
        let mut affine = [[0.0; 4]; 4];
        affine[0][0] = spacing[2];
        affine[1][1] = spacing[1];
        affine[2][2] = spacing[0];
        affine[3][3] = 1.0;
        Header {
            stream_type,
            shape,
            channels: 1,
            spacing,
            affine,
            value_range: None,
            meta: Meta::new(),
        }
    }

    /// Same geometry, another stream type.
    pub fn with_type(&self, stream_type: StreamType, channels: usize) -> Self {
        let mut h = self.clone();
        h.stream_type = stream_type;
        h.channels = channels;
        if stream_type != StreamType::Image {
            h.value_range = None;
        }
        h
    }

    pub fn num_slices(&self) -> usize {
        self.shape[0]
    }

    /// `Ok` when both streams lie on the same grid, else an error naming both (by `name`, the
    /// `source` metadata where present, shape and affine).
    pub fn check_same_geometry(
        &self,
        name: &str,
        other: &Header,
        other_name: &str,
    ) -> Result<(), String> {
        if self.same_geometry(other) {
            return Ok(());
        }
        Err(format!(
            "{name} and {other_name} have different geometry: {} vs {}",
            self.describe(name),
            other.describe(other_name)
        ))
    }

    /// `what`, the source where known, shape and affine, for error messages.
    pub fn describe(&self, what: &str) -> String {
        let src = self
            .meta
            .get("source")
            .and_then(serde_json::Value::as_str)
            .map(|s| format!(" {s}"))
            .unwrap_or_default();
        let [nk, nj, ni] = self.shape;
        let rows: Vec<String> = self.affine[..3]
            .iter()
            .map(|r| format!("[{:.4}, {:.4}, {:.4}, {:.4}]", r[0], r[1], r[2], r[3]))
            .collect();
        format!(
            "{what}{src} (shape i,j,k {ni}x{nj}x{nk}, affine {})",
            rows.join(" ")
        )
    }

    /// True when shape and affine agree within 1e-4 mm.
    pub fn same_geometry(&self, other: &Header) -> bool {
        self.shape == other.shape
            && self
                .affine
                .iter()
                .flatten()
                .zip(other.affine.iter().flatten())
                .all(|(a, b)| (a - b).abs() <= 1e-4 * (1.0 + a.abs()))
    }
}

/// The pixels of one slice.
#[derive(Clone, Debug, PartialEq)]
pub enum SliceData {
    /// `(nj, ni)`.
    Image(Array2<f32>),
    /// `(nj, ni)`.
    Label(Array2<u8>),
    /// `(C, nj, ni)`.
    Prob(Array3<f32>),
}

impl SliceData {
    pub fn stream_type(&self) -> StreamType {
        match self {
            SliceData::Image(_) => StreamType::Image,
            SliceData::Label(_) => StreamType::Label,
            SliceData::Prob(_) => StreamType::Prob,
        }
    }
    /// `(nj, ni)`.
    pub fn dims(&self) -> (usize, usize) {
        match self {
            SliceData::Image(a) => a.dim(),
            SliceData::Label(a) => a.dim(),
            SliceData::Prob(a) => (a.shape()[1], a.shape()[2]),
        }
    }
    pub fn image(&self) -> Option<&Array2<f32>> {
        match self {
            SliceData::Image(a) => Some(a),
            _ => None,
        }
    }
    pub fn label(&self) -> Option<&Array2<u8>> {
        match self {
            SliceData::Label(a) => Some(a),
            _ => None,
        }
    }
    pub fn prob(&self) -> Option<&Array3<f32>> {
        match self {
            SliceData::Prob(a) => Some(a),
            _ => None,
        }
    }
    /// Image pixels, or label values as floats.
    pub fn to_f32(&self) -> Option<Array2<f32>> {
        match self {
            SliceData::Image(a) => Some(a.clone()),
            SliceData::Label(a) => Some(a.mapv(f32::from)),
            SliceData::Prob(_) => None,
        }
    }
}

/// One slice of a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    /// Slice index k in `0..header.shape[0]`.
    pub index: usize,
    pub data: SliceData,
    /// Per-slice metadata (e.g. a region-of-interest box).
    pub meta: Meta,
}

impl Slice {
    pub fn new(index: usize, data: SliceData) -> Self {
        Slice {
            index,
            data,
            meta: Meta::new(),
        }
    }
}

/// What travels over an edge.
#[derive(Clone, Debug)]
pub enum Message {
    Header(Arc<Header>),
    Slice(Arc<Slice>),
    End,
}

/// Voxels of a gathered volume.
#[derive(Clone, Debug, PartialEq)]
pub enum VolumeData {
    /// `(nk, nj, ni)`.
    Image(Array3<f32>),
    /// `(nk, nj, ni)`.
    Label(Array3<u8>),
    /// `(nk, C, nj, ni)`.
    Prob(Array4<f32>),
}

/// A whole stream held in memory: what gathering nodes work on.
#[derive(Clone, Debug)]
pub struct Volume {
    pub header: Header,
    pub data: VolumeData,
    /// Per-slice metadata; `None` where the stream had no slice at that index.
    pub slice_meta: Vec<Option<Meta>>,
}

impl Volume {
    /// An all-zero volume with every slice absent.
    pub fn zeros(header: Header) -> Self {
        let [nk, nj, ni] = header.shape;
        let data = match header.stream_type {
            StreamType::Image => VolumeData::Image(Array3::zeros((nk, nj, ni))),
            StreamType::Label => VolumeData::Label(Array3::zeros((nk, nj, ni))),
            StreamType::Prob => VolumeData::Prob(Array4::zeros((nk, header.channels, nj, ni))),
        };
        Volume {
            header,
            data,
            slice_meta: vec![None; nk],
        }
    }

    /// A dense volume with every slice present.
    pub fn new(header: Header, data: VolumeData) -> Self {
        let nk = header.shape[0];
        Volume {
            header,
            data,
            slice_meta: vec![Some(Meta::new()); nk],
        }
    }

    /// Stores one slice; the caller checked its type and size.
    pub fn put(&mut self, slice: &Slice) {
        let k = slice.index;
        match (&mut self.data, &slice.data) {
            (VolumeData::Image(v), SliceData::Image(s)) => v.index_axis_mut(Axis(0), k).assign(s),
            (VolumeData::Label(v), SliceData::Label(s)) => v.index_axis_mut(Axis(0), k).assign(s),
            (VolumeData::Prob(v), SliceData::Prob(s)) => v.index_axis_mut(Axis(0), k).assign(s),
            _ => unreachable!("slice type checked by the caller"),
        }
        self.slice_meta[k] = Some(slice.meta.clone());
    }

    /// Slice `k` as stream data (a copy).
    pub fn slice(&self, k: usize) -> SliceData {
        match &self.data {
            VolumeData::Image(v) => SliceData::Image(v.index_axis(Axis(0), k).to_owned()),
            VolumeData::Label(v) => SliceData::Label(v.index_axis(Axis(0), k).to_owned()),
            VolumeData::Prob(v) => SliceData::Prob(v.index_axis(Axis(0), k).to_owned()),
        }
    }

    pub fn image(&self) -> Option<&Array3<f32>> {
        match &self.data {
            VolumeData::Image(a) => Some(a),
            _ => None,
        }
    }
    pub fn label(&self) -> Option<&Array3<u8>> {
        match &self.data {
            VolumeData::Label(a) => Some(a),
            _ => None,
        }
    }
    pub fn prob(&self) -> Option<&Array4<f32>> {
        match &self.data {
            VolumeData::Prob(a) => Some(a),
            _ => None,
        }
    }
}

/// Minimum and maximum of a slice, ignoring NaN; `None` when empty.
pub fn min_max(a: ArrayView2<f32>) -> Option<(f32, f32)> {
    let mut it = a.iter().copied().filter(|v| !v.is_nan());
    let first = it.next()?;
    Some(it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
}
