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
/// Order: `ORT_DYLIB_PATH` if set (must exist); else the Python environment the executable is
/// installed in (`<exe>/../lib*/python3*/{site,dist}-packages/onnxruntime/capi/libonnxruntime.so*`,
/// where `pip install` of the voxflow wheel puts it next to its `onnxruntime` dependency); else
/// `.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*` in the nearest ancestor
/// folder of the executable that has one; else the same under the repository root recorded at
/// build time; else the `onnxruntime` package that `python3` (first the one beside the executable,
/// then the one on `PATH`) imports. Otherwise [`FcnError::LibraryNotFound`], whose message says how
/// to install it or set `ORT_DYLIB_PATH`.
pub fn ort_library() -> Result<PathBuf, FcnError> {
    let exe = std::env::current_exe().ok();
    let mut pythons: Vec<PathBuf> = exe
        .as_deref()
        .and_then(Path::parent)
        .map(|bin| bin.join("python3"))
        .filter(|p| p.is_file())
        .into_iter()
        .collect();
    pythons.push(PathBuf::from("python3"));
    resolve_library(
        std::env::var_os(ORT_DYLIB_ENV),
        exe,
        Path::new(BUILD_ROOT),
        &pythons,
    )
}

/// Discovery logic of [`ort_library`] with its inputs made explicit (testable): `pythons` are the
/// interpreters asked, in order, where their `onnxruntime` package is.
pub fn resolve_library(
    env_value: Option<OsString>,
    exe: Option<PathBuf>,
    build_root: &Path,
    pythons: &[PathBuf],
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
        if let Some(prefix) = exe.parent().and_then(Path::parent) {
            if let Some(lib) = find_in_prefix(prefix) {
                return Ok(lib);
            }
            searched.push(format!(
                "{}/lib*/python3*/{{site,dist}}-packages/onnxruntime/capi",
                prefix.display()
            ));
        }
        for dir in exe.ancestors().skip(1) {
            if let Some(lib) = find_in_venv(dir) {
                return Ok(lib);
            }
        }
        searched.push(format!(
            ".venv/lib/python3*/site-packages/onnxruntime/capi in the folders above {}",
            exe.display()
        ));
    }
    let root = build_root
        .canonicalize()
        .unwrap_or_else(|_| build_root.to_path_buf());
    if let Some(lib) = find_in_venv(&root) {
        return Ok(lib);
    }
    searched.push(format!(
        "{}/.venv/lib/python3*/site-packages/onnxruntime/capi",
        root.display()
    ));
    for python in pythons {
        if let Some(lib) = ask_python(python) {
            return Ok(lib);
        }
        searched.push(format!("`{} -c 'import onnxruntime'`", python.display()));
    }
    Err(FcnError::LibraryNotFound {
        searched: searched.join("; "),
    })
}

/// `dir/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`, the
/// lexicographically last match (the versioned `.so.1.x.y` over a bare `.so`).
pub fn find_in_venv(dir: &Path) -> Option<PathBuf> {
    find_in_prefix(&dir.join(".venv"))
}

/// `prefix/{lib,lib64}/python3*/{site,dist}-packages/onnxruntime/capi/libonnxruntime.so*` of the
/// Python environment (virtualenv, `--user` base or system prefix) at `prefix`: under `lib` if it
/// has one (a virtualenv's `lib64` is a link to it), the lexicographically last match (the
/// versioned `.so.1.x.y` over a bare `.so`).
pub fn find_in_prefix(prefix: &Path) -> Option<PathBuf> {
    ["lib", "lib64"].iter().find_map(|lib| {
        let mut found: Vec<PathBuf> = Vec::new();
        for py in std::fs::read_dir(prefix.join(lib)).ok()?.flatten() {
            if !py.file_name().to_string_lossy().starts_with("python3") {
                continue;
            }
            for packages in ["site-packages", "dist-packages"] {
                found.extend(libraries_in(&py.path().join(packages).join("onnxruntime")));
            }
        }
        found.sort();
        found.pop()
    })
}

/// The `capi/libonnxruntime.so*` files of the `onnxruntime` package folder `package`.
fn libraries_in(package: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(package.join("capi")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("libonnxruntime.so")
        })
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect()
}

/// The library of the `onnxruntime` package that `python` imports; `None` when `python` does not
/// run, has no such package, or the package has no library.
fn ask_python(python: &Path) -> Option<PathBuf> {
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import os, onnxruntime; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let package = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    let mut found = libraries_in(&package);
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
        let got = resolve_library(None, Some(exe.clone()), &build_root, &[]).unwrap();
        assert!(
            got.starts_with(build_root.canonicalize().unwrap()),
            "{got:?}"
        );
        // A venv above the executable wins over the build-time root.
        fake_venv(&exe_root, "python3.11", &["libonnxruntime.so.1.31.1"]);
        let got = resolve_library(None, Some(exe.clone()), &build_root, &[]).unwrap();
        assert!(got.starts_with(&exe_root), "{got:?}");
        // ORT_DYLIB_PATH wins over both, and must exist.
        let lib = build_root.join("custom.so");
        std::fs::write(&lib, b"").unwrap();
        let got = resolve_library(
            Some(lib.clone().into()),
            Some(exe.clone()),
            &build_root,
            &[],
        )
        .unwrap();
        assert_eq!(got, lib);
        let err = resolve_library(
            Some("/nonexistent/libonnxruntime.so".into()),
            Some(exe),
            &build_root,
            &[],
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
        let err = resolve_library(None, Some(empty.join("bin/x")), &empty, &[]).unwrap_err();
        assert!(matches!(err, FcnError::LibraryNotFound { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("scripts/setup-ort.sh") && msg.contains("ORT_DYLIB_PATH"),
            "{msg}"
        );
        std::fs::remove_dir_all(&empty).unwrap();
    }
    fn fake_library(capi: &Path) -> PathBuf {
        std::fs::create_dir_all(capi).unwrap();
        let lib = capi.join("libonnxruntime.so.1.31.1");
        std::fs::write(&lib, b"").unwrap();
        lib
    }

    #[test]
    fn installed_environment_wins_over_venv_above() {
        // `pip install voxflow-*.whl` into ROOT/env: ROOT/env/bin/voxflow and onnxruntime in
        // ROOT/env/lib/python3.X/site-packages; a project `.venv` above must not be taken.
        let root = tmp("prefix");
        let env = root.join("env");
        let exe = env.join("bin/voxflow");
        fake_venv(&root, "python3.11", &["libonnxruntime.so.1.31.1"]);
        let lib = fake_library(&env.join("lib/python3.12/site-packages/onnxruntime/capi"));
        // A virtualenv's lib64 is a link to lib: the path through lib is the one taken.
        std::os::unix::fs::symlink("lib", env.join("lib64")).unwrap();
        let got = resolve_library(None, Some(exe), &root.join("nowhere"), &[]).unwrap();
        assert_eq!(got, lib);
        // A system or --user prefix (Debian's dist-packages, lib64).
        let sys = root.join("usr");
        let lib = fake_library(&sys.join("lib64/python3.11/dist-packages/onnxruntime/capi"));
        assert_eq!(find_in_prefix(&sys).unwrap(), lib);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn python_is_asked_last() {
        let root = tmp("python");
        let lib = fake_library(&root.join("pkgs/onnxruntime/capi"));
        let python = root.join("python3");
        std::fs::write(
            &python,
            format!(
                "#!/bin/sh\necho {}\n",
                root.join("pkgs/onnxruntime").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&python, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let failing = root.join("missing-python3");
        let exe = Some(root.join("bin/voxflow"));
        let got = resolve_library(None, exe.clone(), &root, &[failing.clone(), python]).unwrap();
        assert_eq!(got, lib);
        // Nothing anywhere: the error names every place searched, the interpreter included.
        let msg = resolve_library(None, exe, &root, std::slice::from_ref(&failing))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(&format!("{}/lib*/python3*", root.display()))
                && msg.contains(&failing.display().to_string())
                && msg.contains("pip install onnxruntime==1.31.1"),
            "{msg}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
