//! The NIfTI reader on uncompressed `.nii` bytes, as each stream type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use voxflow_runtime::StreamType;

fuzz_target!(|data: &[u8]| {
    voxflow_fuzz::small_budget();
    let want = [
        None,
        Some(StreamType::Image),
        Some(StreamType::Label),
        Some(StreamType::Prob),
    ][data.len() % 4];
    let _ = voxflow_nodes::io::nifti_io::read_nifti_from(
        data,
        Some(data.len() as u64),
        Path::new("fuzz.nii"),
        want,
    );
});
