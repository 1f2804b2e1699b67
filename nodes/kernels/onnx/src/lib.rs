//! FCN inference on ONNX Runtime for voxflow (issue 3).
//!
//! - [`ort_library`] / [`init`]: find and load `libonnxruntime.so` (from `ORT_DYLIB_PATH`, the
//!   Python environment the executable is installed in, or the project's `.venv` installed by
//!   `scripts/setup-ort.sh`), once per process.
//! - [`ModelInfo`]: the model contract (`metadata_props` keys, see `docs/MODELS.md`), validated.
//! - [`FcnSession`]: one session per worker thread; [`FcnSession::run`] maps `[N, 2r + 1, H, W]`
//!   slices at the model's input size (r = `voxflow.context_slices`, usually 0) to
//!   `[N, C, H, W]` probabilities; [`FcnSession::predict_slices`] does resize -> batch -> run ->
//!   resize back for whole slices.
//!
//! Slices are resized with voxflow-volume's `resize_bilinear`. No dependency on the voxflow
//! runtime.

use std::path::PathBuf;

mod library;
mod model;
mod session;

pub use library::{
    find_in_prefix, find_in_venv, init, ort_library, resolve_library, ORT_DYLIB_ENV,
};
pub use model::{
    Modality, ModelInfo, PreprocessStep, KEY_CLASSES, KEY_INPUT_SIZE, KEY_MODALITY,
    KEY_MODEL_VERSION, KEY_PADDING, KEY_PREPROCESS, REQUIRED_KEYS,
};
pub use session::{reflect_pad, Device, FcnSession};

/// Errors of this crate. Every model-related variant names the model file.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FcnError {
    /// No ONNX Runtime library was found.
    #[error(
        "ONNX Runtime library (libonnxruntime.so*) not found; searched: {searched}. \
         Install it with `pip install onnxruntime==1.31.1` into the Python environment voxflow is installed in, \
         or run `bash scripts/setup-ort.sh` from the voxflow repository root, or set ORT_DYLIB_PATH to a libonnxruntime.so (1.31 or newer)"
    )]
    LibraryNotFound { searched: String },
    /// The library exists (or `ORT_DYLIB_PATH` is set) but could not be loaded.
    #[error("cannot load ONNX Runtime from {path}: {message}")]
    LibraryLoad { path: PathBuf, message: String },
    /// The model file does not exist.
    #[error("model file {path} not found")]
    ModelNotFound { path: PathBuf },
    /// The model path names a folder (or another non-file) instead of a model file.
    #[error("model path {path} is a folder, not an ONNX model file")]
    ModelIsFolder { path: PathBuf },
    /// A model-contract field is missing or inconsistent.
    #[error("model {path}: {field}: {message}")]
    Model {
        path: PathBuf,
        field: String,
        message: String,
    },
    /// `Device::Cuda` was requested but the CUDA execution provider cannot be used.
    #[error("model {path}: device cuda requested but the CUDA execution provider cannot be used: {message}")]
    Cuda { path: PathBuf, message: String },
    /// ONNX Runtime failed (session creation or run).
    #[error("model {path}: ONNX Runtime error: {message}")]
    Ort { path: PathBuf, message: String },
    /// The batch passed to [`FcnSession::run`] does not fit the model.
    #[error("model {path}: bad input: {message}")]
    Input { path: PathBuf, message: String },
}

impl FcnError {
    /// The model file the error is about, if any.
    pub fn model_path(&self) -> Option<&PathBuf> {
        match self {
            FcnError::ModelNotFound { path }
            | FcnError::ModelIsFolder { path }
            | FcnError::Model { path, .. }
            | FcnError::Cuda { path, .. }
            | FcnError::Ort { path, .. }
            | FcnError::Input { path, .. } => Some(path),
            FcnError::LibraryNotFound { .. } | FcnError::LibraryLoad { .. } => None,
        }
    }
}
