//! Radiomic features of one region, matching PyRadiomics 3.0.1 with default settings.
//!
//! Entry point: [`features`]. It takes an intensity volume, a boolean mask of the
//! region and the voxel spacing, and returns the 107 default PyRadiomics features
//! (`original_shape_*`, `original_firstorder_*`, `original_glcm_*`, `original_gldm_*`,
//! `original_glrlm_*`, `original_glszm_*`, `original_ngtdm_*`) named and ordered as
//! PyRadiomics' `RadiomicsFeatureExtractor().execute(...)` returns them.
//!
//! Conventions (whole project): arrays have shape `(nk, nj, ni)` in C order, axis 0 =
//! slice k; `spacing = [dk, dj, di]` in mm, in array-axis order. This equals
//! `sitk.GetArrayFromImage(img)` with `img.GetSpacing()[::-1]`, which is what
//! PyRadiomics works on.
//!
//! What PyRadiomics does and we reproduce:
//! * the mask is cropped to its bounding box; shape features pad it with one voxel;
//! * discretisation with a fixed bin width `w`: `floor(x/w) - floor(min/w) + 1`
//!   (via `np.digitize` on edges `min - min % w + k*w`); texture classes and
//!   firstorder Entropy/Uniformity use the binned values, the other firstorder
//!   features the raw intensities;
//! * texture: distance 1, 13 directions in 3D; GLCM symmetric, features averaged over
//!   the directions with a non-empty matrix; GLRLM likewise; GLSZM/GLDM/NGTDM use the
//!   26-neighbourhood.
//!
//! Work is split over feature classes with rayon.
//!
//! ```
//! use ndarray::Array3;
//! use voxflow_radiomics::{features, Settings};
//!
//! let image = Array3::from_shape_fn((6, 8, 8), |(k, j, i)| (k * 10 + j * 3 + i) as f32);
//! let mask = Array3::from_shape_fn((6, 8, 8), |(k, j, i)| {
//!     (1..5).contains(&k) && (2..6).contains(&j) && (1..7).contains(&i)
//! });
//! let f = features(image.view(), mask.view(), [2.0, 0.7, 0.7], &Settings::default()).unwrap();
//! assert_eq!(f.len(), 107);
//! assert_eq!(f[13].0, "original_shape_VoxelVolume");
//! assert!((f[13].1 - 96.0 * 2.0 * 0.7 * 0.7).abs() < 1e-9);
//! ```

mod firstorder;
mod glcm;
mod gldm;
mod glrlm;
mod glszm;
mod linalg;
mod ngtdm;
mod roi;
mod shape;

use ndarray::ArrayView3;
use std::fmt;

/// Extraction settings. `Default` gives PyRadiomics 3.0.1 defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Fixed bin width for discretisation (PyRadiomics `binWidth`, default 25).
    pub bin_width: f64,
    /// GLDM dependence threshold (PyRadiomics `gldm_a`, default 0): neighbours with
    /// `|level difference| <= gldm_a` are dependent.
    pub gldm_a: u32,
    /// Minimum number of bounding-box dimensions with size > 1 (PyRadiomics
    /// `minimumROIDimensions`, default 2). A region with fewer is rejected.
    pub minimum_roi_dimensions: usize,
    /// Reject regions with `voxels <= minimum_roi_size` (PyRadiomics `minimumROISize`,
    /// default `None` = no check).
    pub minimum_roi_size: Option<usize>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bin_width: 25.0,
            gldm_a: 0,
            minimum_roi_dimensions: 2,
            minimum_roi_size: None,
        }
    }
}

/// Why features could not be computed.
#[derive(Debug, Clone, PartialEq)]
pub enum RadiomicsError {
    /// Image and mask shapes differ.
    ShapeMismatch { image: [usize; 3], mask: [usize; 3] },
    /// The mask selects no voxel.
    EmptyMask,
    /// The mask selects exactly one voxel (PyRadiomics refuses this too).
    SingleVoxel,
    /// The region's bounding box extends in fewer dimensions than required
    /// (PyRadiomics `minimumROIDimensions`).
    TooFewDimensions { found: usize, required: usize },
    /// Fewer voxels than `minimum_roi_size` (PyRadiomics `minimumROISize`).
    RoiTooSmall { voxels: usize, minimum: usize },
    /// A spacing component is not finite and > 0.
    InvalidSpacing([f64; 3]),
    /// `bin_width` is not finite and > 0.
    InvalidBinWidth(f64),
    /// The image has a NaN or infinite value inside the mask.
    NonFiniteIntensity,
}

impl fmt::Display for RadiomicsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RadiomicsError::ShapeMismatch { image, mask } => {
                write!(f, "image shape {image:?} differs from mask shape {mask:?}")
            }
            RadiomicsError::EmptyMask => write!(f, "no region: the mask is empty"),
            RadiomicsError::SingleVoxel => write!(
                f,
                "the mask contains a single voxel; features are undefined (PyRadiomics refuses it too)"
            ),
            RadiomicsError::TooFewDimensions { found, required } => write!(
                f,
                "region extends in {found} dimension(s), at least {required} required"
            ),
            RadiomicsError::RoiTooSmall { voxels, minimum } => {
                write!(f, "region has {voxels} voxels, more than {minimum} required")
            }
            RadiomicsError::InvalidSpacing(s) => write!(f, "invalid spacing {s:?}"),
            RadiomicsError::InvalidBinWidth(w) => write!(f, "invalid bin width {w}"),
            RadiomicsError::NonFiniteIntensity => {
                write!(f, "image has a non-finite value inside the mask")
            }
        }
    }
}

impl std::error::Error for RadiomicsError {}

/// Feature classes in PyRadiomics' output order, with their feature names in order.
pub const FEATURE_CLASSES: [(&str, &[&str]); 7] = [
    ("shape", shape::NAMES),
    ("firstorder", firstorder::NAMES),
    ("glcm", glcm::NAMES),
    ("gldm", gldm::NAMES),
    ("glrlm", glrlm::NAMES),
    ("glszm", glszm::NAMES),
    ("ngtdm", ngtdm::NAMES),
];

/// The full names (`original_<class>_<feature>`) that [`features`] returns, in order.
pub fn feature_names() -> Vec<String> {
    FEATURE_CLASSES
        .iter()
        .flat_map(|(class, names)| names.iter().map(move |n| format!("original_{class}_{n}")))
        .collect()
}

/// Computes the PyRadiomics default features of the region `mask` of `image`.
///
/// `spacing` is the voxel size in mm in array-axis order (`[dk, dj, di]`). Returns
/// `(name, value)` pairs named and ordered as PyRadiomics 3.0.1. Errors instead of NaN
/// for an empty mask, a single voxel, or a region extending in fewer than
/// `settings.minimum_roi_dimensions` dimensions. Like PyRadiomics, the GLCM features are
/// NaN when no two mask voxels are 26-neighbours (no co-occurrence in any direction).
pub fn features(
    image: ArrayView3<f32>,
    mask: ArrayView3<bool>,
    spacing: [f64; 3],
    settings: &Settings,
) -> Result<Vec<(String, f64)>, RadiomicsError> {
    if image.shape() != mask.shape() {
        let s = |v: &[usize]| [v[0], v[1], v[2]];
        return Err(RadiomicsError::ShapeMismatch {
            image: s(image.shape()),
            mask: s(mask.shape()),
        });
    }
    if spacing.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(RadiomicsError::InvalidSpacing(spacing));
    }
    if !settings.bin_width.is_finite() || settings.bin_width <= 0.0 {
        return Err(RadiomicsError::InvalidBinWidth(settings.bin_width));
    }
    let roi = roi::Roi::new(image, mask, settings)?;

    let mut shape_v = Vec::new();
    let mut first_v = Vec::new();
    let mut glcm_v = Vec::new();
    let mut gldm_v = Vec::new();
    let mut glrlm_v = Vec::new();
    let mut glszm_v = Vec::new();
    let mut ngtdm_v = Vec::new();
    rayon::scope(|s| {
        s.spawn(|_| shape_v = shape::compute(&roi, spacing));
        s.spawn(|_| first_v = firstorder::compute(&roi, spacing));
        s.spawn(|_| glcm_v = glcm::compute(&roi));
        s.spawn(|_| gldm_v = gldm::compute(&roi, settings.gldm_a));
        s.spawn(|_| glrlm_v = glrlm::compute(&roi));
        s.spawn(|_| glszm_v = glszm::compute(&roi));
        s.spawn(|_| ngtdm_v = ngtdm::compute(&roi));
    });
    let values = [shape_v, first_v, glcm_v, gldm_v, glrlm_v, glszm_v, ngtdm_v];
    let mut out = Vec::with_capacity(107);
    for ((class, names), vals) in FEATURE_CLASSES.iter().zip(values) {
        debug_assert_eq!(names.len(), vals.len());
        for (n, v) in names.iter().zip(vals) {
            out.push((format!("original_{class}_{n}"), v));
        }
    }
    Ok(out)
}

/// `numpy.spacing(1)`, the epsilon PyRadiomics adds inside logarithms.
pub(crate) const EPS: f64 = f64::EPSILON;
