//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A file of the real-scan folder `$VOXFLOW_DATA`. `None` (with a note) when the variable is
/// unset, i.e. for users without the data; a panic when it is set but the file is missing, or
/// when it is unset under CI (`CI` set), where every test must run.
pub fn data_file(name: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("VOXFLOW_DATA") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but VOXFLOW_DATA is not: the test on {name} cannot run"
        );
        eprintln!("skipped: VOXFLOW_DATA is not set, so the test on {name} does not run");
        return None;
    };
    let p = Path::new(&dir).join(name);
    assert!(
        p.exists(),
        "VOXFLOW_DATA is set to {} but {name} is missing there",
        Path::new(&dir).display()
    );
    Some(p)
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the voxflow binary with arguments.
pub fn voxflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_voxflow"))
        .args(args)
        .output()
        .expect("run voxflow")
}

/// Runs voxflow and panics with its stderr when it fails.
pub fn voxflow_ok(args: &[&str]) -> Output {
    let o = voxflow(args);
    assert!(
        o.status.success(),
        "voxflow {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A fresh temporary folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("voxflow-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// Writes a graph file into `dir` and returns its path.
pub fn write_graph(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write graph");
    p
}

/// File names in `dir`, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}
