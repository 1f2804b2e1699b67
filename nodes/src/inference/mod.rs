//! inference nodes: `fcn` (ONNX Runtime) and the liver -> lesion cascade (`crop_resample`,
//! `paste_back`, `argmax`).

pub mod argmax;
pub mod crop_resample;
pub mod fcn;
pub mod paste_back;
mod support;

pub use support::liver;

use std::sync::Arc;
use voxflow_runtime::NodeKind;

/// Bilinear slice resampling used by these nodes (`align_corners = false`), re-exported for
/// tests and other nodes.
pub use voxflow_volume::resize_bilinear;

/// The node kinds of this family.
pub fn kinds() -> Vec<Arc<dyn NodeKind>> {
    vec![
        Arc::new(fcn::Fcn),
        Arc::new(crop_resample::CropResample),
        Arc::new(paste_back::PasteBack),
        Arc::new(argmax::Argmax),
    ]
}
