//! Volume input and output: `read_volume`, `write_volume`, `write_dicom_seg`; shared code in
//! `support/`.

pub mod read_volume;
mod support;
pub mod write_dicom_seg;
pub mod write_volume;

pub(crate) use support::dicom_lengths;
pub use support::{alloc_cap, budget, dicom_io, dicom_source, nifti_io, phantom};

use std::sync::Arc;
use voxflow_runtime::NodeKind;

/// The node kinds of this family.
pub fn kinds() -> Vec<Arc<dyn NodeKind>> {
    vec![
        Arc::new(read_volume::ReadVolume),
        Arc::new(write_volume::WriteVolume),
        Arc::new(write_dicom_seg::WriteDicomSeg),
    ]
}
