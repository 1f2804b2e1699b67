//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use ndarray::{Array4, ArrayD, IxDyn};

pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/models")
}

pub fn model(name: &str) -> PathBuf {
    models_dir().join(name)
}

/// Loads ONNX Runtime through the crate's own discovery; panics with its message
/// (which says to run scripts/setup-ort.sh) if the library is missing.
pub fn require_ort() {
    if let Err(e) = voxflow_onnx::init() {
        panic!("{e}");
    }
}

/// Reads a little-endian f32 fixture with the given shape.
pub fn read_f32(name: &str, shape: &[usize]) -> ArrayD<f32> {
    let bytes = std::fs::read(models_dir().join(name)).unwrap();
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
}

/// (input, expected output) of a parity fixture written by training/make_test_model.py.
pub fn parity_fixture(name: &str) -> (Array4<f32>, Array4<f32>) {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(models_dir().join(format!("parity_{name}.json"))).unwrap(),
    )
    .unwrap();
    let shape = |k: &str| -> Vec<usize> {
        meta[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    };
    let x = read_f32(&format!("parity_{name}_input.bin"), &shape("input_shape"));
    let y = read_f32(&format!("parity_{name}_output.bin"), &shape("output_shape"));
    (
        x.into_dimensionality().unwrap(),
        y.into_dimensionality().unwrap(),
    )
}

pub fn max_abs_diff(a: &Array4<f32>, b: &Array4<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
