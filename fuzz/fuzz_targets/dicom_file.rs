//! The DICOM series reader on a folder holding one file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    voxflow_fuzz::small_budget();
    let dir = voxflow_fuzz::series_dir(&[data]);
    let _ = voxflow_nodes::io::read_volume::read_any(&dir, None, None);
});
