//! Locating and loading the ONNX Runtime shared library (`load-dynamic`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::FcnError;

/// Environment variable that overrides library discovery.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// Repository root recorded at build time (this crate lives at `nodes/kernels/onnx`).
const BUILD_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../..");

static ENV: OnceLock<Result<(PathBuf, Environment), FcnError>> = OnceLock::new();

/// Path of the ONNX Runtime library voxflow will load.
///
/// Order: `ORT_DYLIB_PATH` if set (must exist); else `.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`
/// in the nearest ancestor folder of the running executable that has one; else the same under the repository
/// root recorded at build time. Otherwise [`FcnError::LibraryNotFound`], whose message says to run
/// `scripts/setup-ort.sh` or set `ORT_DYLIB_PATH`.
pub fn ort_library() -> Result<PathBuf, FcnError> {
    resolve_library(
        std::env::var_os(ORT_DYLIB_ENV),
        std::env::current_exe().ok(),
        Path::new(BUILD_ROOT),
    )
}

/// Discovery logic of [`ort_library`] with its inputs made explicit (testable).
pub fn resolve_library(
    env_value: Option<OsString>,
    exe: Option<PathBuf>,
    build_root: &Path,
) -> Result<PathBuf, FcnError> {
    if let Some(value) = env_value.filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(FcnError::LibraryLoad {
                path,
                message: format!("{ORT_DYLIB_ENV} is set but names no file"),
            })
        };
    }
    let mut searched = Vec::new();
    if let Some(exe) = exe {
        for dir in exe.ancestors().skip(1) {
            if let Some(lib) = find_in_venv(dir) {
                return Ok(lib);
            }
        }
        searched.push(format!("the folders above {}", exe.display()));
    }
    let root = build_root
        .canonicalize()
        .unwrap_or_else(|_| build_root.to_path_buf());
    if let Some(lib) = find_in_venv(&root) {
        return Ok(lib);
    }
    searched.push(root.display().to_string());
    Err(FcnError::LibraryNotFound {
        searched: searched.join(", "),
    })
}

/// `dir/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`, the
/// lexicographically last match (the versioned `.so.1.x.y` over a bare `.so`).
pub fn find_in_venv(dir: &Path) -> Option<PathBuf> {
    let lib_dir = dir.join(".venv").join("lib");
    let mut found: Vec<PathBuf> = Vec::new();
    for py in std::fs::read_dir(&lib_dir).ok()?.flatten() {
        if !py.file_name().to_string_lossy().starts_with("python3") {
            continue;
        }
        let capi = py.path().join("site-packages/onnxruntime/capi");
        let Ok(entries) = std::fs::read_dir(&capi) else {
            continue;
        };
        found.extend(
            entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("libonnxruntime.so")
                })
                .map(|e| e.path())
                .filter(|p| p.is_file()),
        );
    }
    found.sort();
    found.pop()
}

/// Loads ONNX Runtime (once per process) and returns the library path used.
///
/// Called by [`crate::FcnSession::new`] and [`crate::ModelInfo::load`]; call it early to fail fast.
/// A failure is remembered: later calls return the same error.
pub fn init() -> Result<&'static Path, FcnError> {
    environment().map(|(p, _)| p.as_path())
}

pub(crate) fn environment() -> Result<&'static (PathBuf, Environment), FcnError> {
    ENV.get_or_init(|| {
        let path = ort_library()?;
        let builder = ort::init_from(&path).map_err(|e| FcnError::LibraryLoad {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let env = builder
            .with_name("voxflow")
            .build()
            .map_err(|e| FcnError::LibraryLoad {
                path: path.clone(),
                message: e.to_string(),
            })?;
        tracing::debug!(path = %path.display(), "loaded ONNX Runtime");
        Ok((path, env))
    })
    .as_ref()
    .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_venv(root: &Path, py: &str, names: &[&str]) {
        let capi = root
            .join(".venv/lib")
            .join(py)
            .join("site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        for n in names {
            std::fs::write(capi.join(n), b"").unwrap();
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("voxflow-onnx-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn venv_search_prefers_versioned_library() {
        let root = tmp("versioned");
        assert_eq!(find_in_venv(&root), None);
        fake_venv(
            &root,
            "python3.11",
            &["libonnxruntime.so", "libonnxruntime.so.1.31.1", "other.so"],
        );
        assert_eq!(
            find_in_venv(&root).unwrap(),
            root.join(
                ".venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1"
            )
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn discovery_order() {
        let exe_root = tmp("exe");
        let build_root = tmp("build");
        fake_venv(&build_root, "python3.12", &["libonnxruntime.so.1.31.1"]);
        let exe = exe_root.join("target/release/voxflow");
        // Nothing next to the executable: the build-time root is used.
        let got = resolve_library(None, Some(exe.clone()), &build_root).unwrap();
        assert!(
            got.starts_with(build_root.canonicalize().unwrap()),
            "{got:?}"
        );
        // A venv above the executable wins over the build-time root.
        fake_venv(&exe_root, "python3.11", &["libonnxruntime.so.1.31.1"]);
        let got = resolve_library(None, Some(exe.clone()), &build_root).unwrap();
        assert!(got.starts_with(&exe_root), "{got:?}");
        // ORT_DYLIB_PATH wins over both, and must exist.
        let lib = build_root.join("custom.so");
        std::fs::write(&lib, b"").unwrap();
        let got =
            resolve_library(Some(lib.clone().into()), Some(exe.clone()), &build_root).unwrap();
        assert_eq!(got, lib);
        let err = resolve_library(
            Some("/nonexistent/libonnxruntime.so".into()),
            Some(exe),
            &build_root,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ORT_DYLIB_PATH") && err.contains("/nonexistent/libonnxruntime.so"),
            "{err}"
        );
        std::fs::remove_dir_all(&exe_root).unwrap();
        std::fs::remove_dir_all(&build_root).unwrap();
    }

    #[test]
    fn missing_library_error_says_how_to_install() {
        let empty = tmp("empty");
        let err = resolve_library(None, Some(empty.join("bin/x")), &empty).unwrap_err();
        assert!(matches!(err, FcnError::LibraryNotFound { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("scripts/setup-ort.sh") && msg.contains("ORT_DYLIB_PATH"),
            "{msg}"
        );
        std::fs::remove_dir_all(&empty).unwrap();
    }
}
