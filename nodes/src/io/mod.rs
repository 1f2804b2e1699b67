//! Volume input and output.

pub mod alloc_cap;
pub mod budget;
pub mod dicom_io;
mod dicom_lengths;
pub mod dicom_source;
pub mod nifti_io;
pub mod phantom;
pub mod read_volume;
pub mod write_volume;

use std::sync::Arc;
use voxflow_runtime::NodeKind;

/// The node kinds of this family.
pub fn kinds() -> Vec<Arc<dyn NodeKind>> {
    vec![
        Arc::new(read_volume::ReadVolume),
        Arc::new(write_volume::WriteVolume),
    ]
}
