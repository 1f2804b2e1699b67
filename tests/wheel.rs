//! Installable without Rust (issue 21): `scripts/build-wheel.sh` builds the wheel, `pip install`
//! puts it into a fresh virtualenv (onnxruntime from PyPI, pip's cache), and the installed
//! `voxflow` segments the phantom from another folder with the graphs, models and ONNX Runtime
//! of that environment alone.

mod common;

use common::{root, temp_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use voxflow_nodes::io::read_volume::read_any;
use voxflow_runtime::stream::{StreamType, VolumeData};

/// Runs `cmd`, panicking with its output when it cannot start or fails.
fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The one wheel `scripts/build-wheel.sh` leaves in target/wheels.
fn build_wheel() -> PathBuf {
    run_ok(
        Command::new("bash")
            .arg(root().join("scripts/build-wheel.sh"))
            .current_dir(root()),
        "scripts/build-wheel.sh",
    );
    let wheels: Vec<PathBuf> = std::fs::read_dir(root().join("target/wheels"))
        .expect("target/wheels")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("voxflow-") && name.ends_with(".whl")
        })
        .collect();
    assert_eq!(
        wheels.len(),
        1,
        "one voxflow wheel in target/wheels: {wheels:?}"
    );
    wheels.into_iter().next().unwrap()
}

#[test]
fn pip_installed_voxflow_segments_the_phantom_from_another_folder() {
    let wheel = build_wheel();
    let tmp = temp_dir("wheel");
    let venv = tmp.join("venv");
    run_ok(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    );
    let venv = venv.canonicalize().unwrap();
    run_ok(
        Command::new(venv.join("bin/python"))
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-q"])
            .arg(&wheel),
        "pip install the wheel",
    );

    // The layout `voxflow segment` relies on: <prefix>/bin/voxflow, <prefix>/share/voxflow.
    let exe = venv.join("bin/voxflow");
    let home = venv.join("share/voxflow");
    for f in [
        "graphs/ct_liver_lesion.yaml",
        "graphs/mri_liver.yaml",
        "models/ct_liver.onnx",
        "models/ct_lesion.onnx",
        "models/mr_liver.onnx",
        "models/README.md",
    ] {
        let installed = home.join(f);
        assert!(installed.is_file(), "{} not installed", installed.display());
        assert_eq!(
            std::fs::read(&installed).unwrap(),
            std::fs::read(root().join(f)).unwrap(),
            "{f} installed differs from the repository's"
        );
    }

    // Another folder, no ORT_DYLIB_PATH: everything comes from the environment.
    let work = tmp.join("elsewhere");
    std::fs::create_dir_all(&work).unwrap();
    let o = run_ok(
        Command::new(&exe)
            .arg("run")
            .arg(home.join("graphs/ct_liver_lesion.yaml"))
            .args([
                "--set",
                "input=phantom:small",
                "--set",
                "output=seg.nii.gz",
                "-q",
            ])
            .current_dir(&work)
            .env_remove("ORT_DYLIB_PATH")
            .env("VOXFLOW_LOG", "voxflow_onnx=debug"),
        "installed voxflow run graphs/ct_liver_lesion.yaml",
    );
    let log = String::from_utf8_lossy(&o.stderr);
    let ort = format!("path={}", venv.join("lib").display());
    assert!(
        log.contains("loaded ONNX Runtime") && log.contains(&ort),
        "ONNX Runtime not loaded from {}:\n{log}",
        venv.display()
    );

    let seg = work.join("seg.nii.gz");
    let vol = read_any(&seg, Some(StreamType::Label), None)
        .unwrap_or_else(|e| panic!("read {}: {e}", seg.display()));
    let VolumeData::Label(labels) = &vol.data else {
        panic!("{} is not a label volume", seg.display())
    };
    let count = |l: u8| labels.iter().filter(|&&v| v == l).count();
    let (liver, lesion) = (count(1), count(2));
    eprintln!("installed voxflow on phantom:small: {liver} liver, {lesion} lesion voxels");
    assert!(liver > 10_000, "liver voxels: {liver}");
    assert!(lesion > 0, "lesion voxels: {lesion}");
    assert!(
        work.join("seg.html").is_file(),
        "no report beside the output"
    );
    let _ = std::fs::remove_dir_all(Path::new(&tmp));
}
