//! The NIfTI reader on `.nii.gz` bytes: the input, gzipped as two members (split in the
//! middle), so the fuzzer mutates the NIfTI bytes and the reader also decompresses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    voxflow_fuzz::small_budget();
    let gz = voxflow_fuzz::gzip_two_members(data);
    let _ = voxflow_nodes::io::nifti_io::read_nifti_from(
        gz.as_slice(),
        Some(gz.len() as u64),
        Path::new("fuzz.nii.gz"),
        None,
    );
});
