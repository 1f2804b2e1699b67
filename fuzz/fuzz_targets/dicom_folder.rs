//! The DICOM series reader on a small folder: the input is split into files at each
//! `voxflow_fuzz::FILE_SEPARATOR`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    voxflow_fuzz::small_budget();
    let files = voxflow_fuzz::split_files(data);
    let dir = voxflow_fuzz::series_dir(&files);
    let _ = voxflow_nodes::io::read_volume::read_any(&dir, None, None);
});
