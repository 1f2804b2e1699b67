//! What the io nodes share: the NIfTI and DICOM readers and writers, the DICOM source record,
//! the built-in phantom, memory budgets for untrusted files.

pub mod alloc_cap;
pub mod budget;
pub mod dicom_io;
pub(crate) mod dicom_lengths;
pub mod dicom_source;
pub mod nifti_io;
pub mod phantom;
