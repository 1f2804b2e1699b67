//! Training smoke test: runs `training/smoke.py` (a few iterations of the real training loop on
//! tiny synthetic crops, checkpoint + resume, ONNX export with fp16 weights), then loads the
//! exported model through `voxflow_onnx` and checks it reproduces PyTorch's probabilities.
//!
//! Needs the training environment (`bash scripts/setup-training.sh`) and ONNX Runtime
//! (`bash scripts/setup-ort.sh`); fails without them unless VOXFLOW_SKIP_TRAINING=1.

mod common;

use ndarray::{Array4, ArrayView4};
use std::path::PathBuf;
use std::process::Command;
use voxflow_onnx::{Device, FcnSession, Modality};

fn read_f32(path: &PathBuf) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn shape4(v: &serde_json::Value) -> (usize, usize, usize, usize) {
    let s: Vec<usize> = v
        .as_array()
        .expect("shape")
        .iter()
        .map(|x| x.as_u64().expect("dim") as usize)
        .collect();
    (s[0], s[1], s[2], s[3])
}

/// The training venv's python, `None` when VOXFLOW_SKIP_TRAINING=1; panics when it is missing.
fn training_python() -> Option<PathBuf> {
    if std::env::var_os("VOXFLOW_SKIP_TRAINING").is_some_and(|v| v == "1") {
        assert!(
            std::env::var_os("CI").is_none(),
            "VOXFLOW_SKIP_TRAINING=1 is not allowed under CI"
        );
        eprintln!("skipped: VOXFLOW_SKIP_TRAINING=1");
        return None;
    }
    let python = common::root().join(".venv-train/bin/python");
    assert!(
        python.exists(),
        "the training environment {} is missing: run `bash scripts/setup-training.sh` \
         (or set VOXFLOW_SKIP_TRAINING=1 to skip this test)",
        python.display()
    );
    Some(python)
}

#[test]
fn python_unit_tests_pass() {
    let Some(python) = training_python() else {
        return;
    };
    let run = Command::new(&python)
        .args(["-m", "unittest", "discover", "-s", "training/tests"])
        .current_dir(common::root())
        .output()
        .expect("run the training unit tests");
    assert!(
        run.status.success(),
        "training unit tests failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn smoke_train_export_and_load_in_voxflow() {
    let Some(python) = training_python() else {
        return;
    };
    let root = common::root();
    let out = common::temp_dir("training-smoke");
    let run = Command::new(&python)
        .arg(root.join("training/smoke.py"))
        .arg(&out)
        .current_dir(&root)
        .output()
        .expect("run training/smoke.py");
    assert!(
        run.status.success(),
        "training/smoke.py failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );

    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("smoke.json")).expect("smoke.json"))
            .expect("json");
    let (n, _, h, w) = shape4(&meta["input_shape"]);
    let (_, c, _, _) = shape4(&meta["prob_shape"]);
    let input = Array4::from_shape_vec((n, 1, h, w), read_f32(&out.join("smoke_input.bin")))
        .expect("input");
    let expected =
        Array4::from_shape_vec((n, c, h, w), read_f32(&out.join("smoke_prob.bin"))).expect("prob");

    let mut session = FcnSession::new(out.join("smoke.onnx"), Device::Cpu, 1)
        .unwrap_or_else(|e| panic!("voxflow could not load the exported model: {e}"));
    let info = session.info().clone();
    assert_eq!(
        info.classes,
        vec!["background".to_string(), "lesion".to_string()]
    );
    assert_eq!(info.input_size, (h, w));
    assert_eq!(info.padding, 0);
    assert_eq!(info.modality, Modality::Ct);
    assert_eq!(info.model_version, "smoke");
    let got = session.run(input.view()).expect("run the exported model");
    assert_eq!(got.shape(), expected.shape());
    let diff = max_abs_diff(got.view(), expected.view());
    assert!(
        diff <= 1e-4,
        "voxflow vs PyTorch probabilities: max |diff| {diff} > 1e-4"
    );
    // The check can fail: the model is not trivially constant.
    let spread = got.iter().fold(0f32, |m, &x| m.max(x)) - got.iter().fold(1f32, |m, &x| m.min(x));
    assert!(
        spread > 1e-3,
        "the smoke model's probabilities are constant ({spread})"
    );
    let _ = std::fs::remove_dir_all(&out);
}

fn max_abs_diff(a: ArrayView4<f32>, b: ArrayView4<f32>) -> f32 {
    a.iter()
        .zip(b.iter())
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}
