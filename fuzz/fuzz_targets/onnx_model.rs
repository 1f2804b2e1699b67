//! The ONNX model-contract reader (`ModelInfo::load`: ONNX Runtime parses the file, voxflow
//! checks its metadata and tensor signature).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = voxflow_fuzz::scratch_file("model.onnx", data);
    let _ = voxflow_onnx::ModelInfo::load(&path);
});
