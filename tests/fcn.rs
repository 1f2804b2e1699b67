//! The `fcn` node: parity with Python onnxruntime on committed fixtures, and bad input.

mod common;

use common::*;
use ndarray::{Array3, Array4};
use std::path::{Path, PathBuf};
use voxflow_nodes::io::nifti_io::write_nifti;
use voxflow_nodes::io::read_volume::read_any;
use voxflow_runtime::{Header, StreamType, VolumeData};

fn models() -> PathBuf {
    root().join("nodes/kernels/onnx/tests/models")
}

fn model(name: &str) -> String {
    models().join(name).display().to_string()
}

fn read_f32(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The committed fixture `parity_NAME`: Python onnxruntime's input `[N,1,H,W]` and output `[N,C,H,W]`.
fn fixture(name: &str) -> (Array4<f32>, Array4<f32>) {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(models().join(format!("parity_{name}.json"))).unwrap(),
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
    let (si, so) = (shape("input_shape"), shape("output_shape"));
    let x = Array4::from_shape_vec(
        (si[0], si[1], si[2], si[3]),
        read_f32(&models().join(format!("parity_{name}_input.bin"))),
    )
    .unwrap();
    let y = Array4::from_shape_vec(
        (so[0], so[1], so[2], so[3]),
        read_f32(&models().join(format!("parity_{name}_output.bin"))),
    )
    .unwrap();
    (x, y)
}

/// No file other than `keep` in `dir` (no output, no temporary left behind).
fn assert_nothing_written(dir: &Path, keep: &[&str]) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect();
    assert!(left.is_empty(), "files left in {}: {left:?}", dir.display());
}

/// Runs fixture `name` through read_volume -> fcn -> write_volume and compares with Python.
fn parity(name: &str, model_file: &str) {
    let dir = temp_dir(&format!("fcn-parity-{name}"));
    let (x, y) = fixture(name);
    let (n, _, h, w) = x.dim();
    // The fixture's slices as a volume (nk = N, nj = H, ni = W).
    let vol: Array3<f32> = x.index_axis(ndarray::Axis(1), 0).to_owned();
    let header = Header::new(StreamType::Image, [n, h, w], [1.0, 1.0, 1.0]);
    write_nifti(&dir.join("in.nii"), &header, &VolumeData::Image(vol)).unwrap();
    let graph = format!(
        "graph: parity\nnodes:\n  ct: {{ kind: read_volume, path: in.nii, as: image }}\n  \
         f: {{ kind: fcn, in: ct, model: {}, device: cpu, batch: 1 }}\n  \
         save: {{ kind: write_volume, in: f, path: prob.nii }}\n",
        model(model_file)
    );
    let g = write_graph(&dir, "g.yaml", &graph);
    voxflow_ok(&["-q", "run", g.to_str().unwrap()]);
    let got = read_any(&dir.join("prob.nii"), Some(StreamType::Prob), None).unwrap();
    let p = got.prob().expect("prob volume");
    assert_eq!(
        p.dim(),
        y.dim(),
        "prob volume is (nk, C, nj, ni) = the fixture's (N, C, H, W)"
    );
    let max_diff = p
        .iter()
        .zip(y.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("{name}: max |voxflow - onnxruntime| = {max_diff:e}");
    assert!(
        max_diff <= 1e-5,
        "{name}: max |voxflow - onnxruntime| = {max_diff}"
    );
    // The fixture is not degenerate: probabilities span most of [0, 1].
    let (lo, hi) = y
        .iter()
        .fold((1.0f32, 0.0f32), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(lo < 0.05 && hi > 0.95, "fixture range {lo}..{hi}");
}

#[test]
fn parity_with_python_onnxruntime() {
    parity("tiny_fcn", "tiny_fcn.onnx");
}

#[test]
fn parity_with_reflect_padding() {
    // 3 classes, 2 px reflect padding applied by voxflow.
    parity("tiny_fcn_pad", "tiny_fcn_pad.onnx");
}

#[test]
fn resamples_to_model_size_and_back() {
    // Phantom slices (not 64x64) through the identity model: class 1 = the input resized to
    // 64x64 and back, so it equals the equalised image only up to interpolation, but it must
    // stay in [0, 1], have the slice grid and sum with class 0 to 1.
    let dir = temp_dir("fcn-resample");
    let graph = format!(
        "graph: r\nnodes:\n  ct: {{ kind: read_volume, path: \"phantom:96x80x8\" }}\n  \
         w: {{ kind: hu_window, in: ct }}\n  eq: {{ kind: equalize, in: w }}\n  \
         f: {{ kind: fcn, in: eq, model: {}, device: cpu, batch: 2, workers: 2 }}\n  \
         save: {{ kind: write_volume, in: f, path: prob.nii }}\n  \
         save_eq: {{ kind: write_volume, in: eq, path: eq.nii }}\n",
        model("identity.onnx")
    );
    let g = write_graph(&dir, "g.yaml", &graph);
    voxflow_ok(&["-q", "run", g.to_str().unwrap()]);
    let p = read_any(&dir.join("prob.nii"), Some(StreamType::Prob), None).unwrap();
    let eq = read_any(&dir.join("eq.nii"), Some(StreamType::Image), None).unwrap();
    let p = p.prob().unwrap();
    let eq = eq.image().unwrap();
    assert_eq!(p.dim(), (8, 2, 80, 96));
    let mut err = 0.0f64;
    for ((k, c, j, i), &v) in p.indexed_iter() {
        assert!((-1e-6..=1.0 + 1e-6).contains(&v));
        if c == 1 {
            assert!((v + p[[k, 0, j, i]] - 1.0).abs() < 1e-5);
            err += (v - eq[[k, j, i]]).abs() as f64;
        }
    }
    let mean = err / eq.len() as f64;
    // Down to 64 px and back blurs edges; a transposed or shifted result would be far off.
    assert!(mean < 0.05, "mean |class 1 - input| = {mean}");
}

/// Runs a phantom graph through `fcn` with extra node params and expects failure.
fn expect_failure(name: &str, fcn_params: &str, preprocess: &str, want: &[&str]) {
    let dir = temp_dir(&format!("fcn-bad-{name}"));
    let graph = format!(
        "graph: bad\nnodes:\n  ct: {{ kind: read_volume, path: \"phantom:64x64x8\" }}\n  {preprocess}\n  \
         f: {{ kind: fcn, in: pre, {fcn_params} }}\n  save: {{ kind: write_volume, in: f, path: out.nii.gz }}\n"
    );
    let g = write_graph(&dir, "g.yaml", &graph);
    let o = voxflow(&["-q", "run", g.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{name}: should fail");
    for w in want {
        assert!(err.contains(w), "{name}: stderr lacks {w:?}:\n{err}");
    }
    assert!(
        err.contains("node `f` (fcn)"),
        "{name}: error names the node:\n{err}"
    );
    assert_nothing_written(&dir, &["g.yaml"]);
}

const EQ: &str = "w: { kind: hu_window, in: ct }\n  pre: { kind: equalize, in: w }";

#[test]
fn missing_model_file() {
    let m = models().join("no_such_model.onnx");
    expect_failure(
        "missing",
        &format!("model: {}", m.display()),
        EQ,
        &["no_such_model.onnx", "not found"],
    );
}

#[test]
fn wrong_input_rank() {
    expect_failure(
        "rank",
        &format!("model: {}", model("bad_rank.onnx")),
        EQ,
        &["bad_rank.onnx", "rank 3"],
    );
}

#[test]
fn missing_metadata() {
    expect_failure(
        "meta",
        &format!("model: {}", model("no_metadata.onnx")),
        EQ,
        &["no_metadata.onnx", "voxflow.model_version", "missing"],
    );
}

/// Whether this build can run CUDA: the ONNX Runtime it loads has its CUDA provider beside it
/// and the machine has an NVIDIA device.
fn cuda_available() -> bool {
    let lib = voxflow_onnx::ort_library().expect("ONNX Runtime found");
    let provider = lib
        .parent()
        .expect("library folder")
        .join("libonnxruntime_providers_cuda.so");
    provider.is_file() && Path::new("/dev/nvidiactl").exists()
}

/// Runs a phantom through `fcn` with `device`; returns the process output and the run report.
fn run_on(device: &str) -> (std::process::Output, Option<serde_json::Value>) {
    let dir = temp_dir(&format!("fcn-device-{}", device.replace(':', "-")));
    let graph = format!(
        "graph: device\nnodes:\n  ct: {{ kind: read_volume, path: \"phantom:64x64x8\" }}\n  {EQ}\n  \
         f: {{ kind: fcn, in: pre, model: {}, device: \"{device}\" }}\n  \
         save: {{ kind: write_volume, in: f, path: out.nii.gz }}\n",
        model("tiny_fcn.onnx")
    );
    let g = write_graph(&dir, "g.yaml", &graph);
    let report = dir.join("report.json");
    let o = voxflow(&[
        "-q",
        "run",
        g.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let r = std::fs::read_to_string(&report)
        .ok()
        .map(|t| serde_json::from_str(&t).expect("run report is JSON"));
    (o, r)
}

/// The facts the `fcn` node `f` put in the run report.
fn fcn_facts(report: &serde_json::Value) -> (String, String) {
    let f = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "f")
        .expect("node f in the run report");
    (
        f["facts"]["device"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        f["facts"]["provider"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn the_run_report_names_the_device_that_ran() {
    let (o, r) = run_on("cpu");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (device, provider) = fcn_facts(&r.expect("report written"));
    assert_eq!(
        (device.as_str(), provider.as_str()),
        ("cpu", "CPUExecutionProvider")
    );
    // auto: CUDA where this build and machine have it, else the CPU.
    let (o, r) = run_on("auto");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (device, provider) = fcn_facts(&r.expect("report written"));
    if cuda_available() {
        assert_eq!(
            (device.as_str(), provider.as_str()),
            ("cuda:0", "CUDAExecutionProvider")
        );
    } else {
        assert_eq!(
            (device.as_str(), provider.as_str()),
            ("cpu", "CPUExecutionProvider")
        );
    }
}

#[test]
fn cuda_runs_where_the_build_has_it_and_is_refused_elsewhere() {
    let (o, r) = run_on("cuda:0");
    let err = String::from_utf8_lossy(&o.stderr);
    if cuda_available() {
        assert!(o.status.success(), "{err}");
        let (device, provider) = fcn_facts(&r.expect("report written"));
        assert_eq!(
            (device.as_str(), provider.as_str()),
            ("cuda:0", "CUDAExecutionProvider")
        );
    } else {
        assert!(!o.status.success(), "device cuda ran without CUDA");
        for w in [
            "tiny_fcn.onnx",
            "device cuda requested",
            "CUDA",
            "node `f` (fcn)",
        ] {
            assert!(err.contains(w), "stderr lacks {w:?}:\n{err}");
        }
    }
    // A device index no machine has is refused either way.
    let (o, _) = run_on("cuda:4096");
    assert!(!o.status.success(), "cuda:4096 ran");
}

#[test]
fn a_bad_device_is_refused_at_its_line() {
    let (o, _) = run_on("cuda:x");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("unknown device `cuda:x` (auto, cpu, cuda or cuda:N)")
            && err.contains("g.yaml:6:"),
        "{err}"
    );
}

#[test]
fn preprocessing_mismatch() {
    // The model expects hu_window + equalize; the stream is only windowed: the steps the
    // stream records differ from the model's.
    let m = format!("model: {}, device: cpu", model("tiny_fcn.onnx"));
    expect_failure(
        "prep",
        &m,
        "pre: { kind: hu_window, in: ct }",
        &[
            "tiny_fcn.onnx",
            "hu_window:-100,400;equalize:256",
            "preprocessed as `hu_window:-100,400`",
        ],
    );
    // Steps not recorded (`zero_above` is no step of the grammar): the declared range is checked.
    expect_failure(
        "prep-range",
        &m,
        "pre: { kind: hu_window, in: ct, zero_above: 3000 }",
        &[
            "tiny_fcn.onnx",
            "hu_window:-100,400;equalize:256",
            "[-100, 400]",
        ],
    );
}

#[test]
fn context_model_sees_each_slice_between_its_neighbours() {
    // Slice k is flat at v(k); the test model's liver channel is 0.75 x slice k-1 + 0.25 x
    // slice k+1, the volume's end slices standing in beyond its ends. 7 slices in groups of
    // 4 x 2 workers: the last group is partial.
    let dir = temp_dir("fcn-context");
    let n = 7;
    let v = |k: usize| (k + 1) as f32 / 10.0;
    let vol = Array3::from_shape_fn((n, 64, 64), |(k, _, _)| v(k));
    let header = Header::new(StreamType::Image, [n, 64, 64], [1.0, 1.0, 2.5]);
    write_nifti(&dir.join("in.nii"), &header, &VolumeData::Image(vol)).unwrap();
    let graph = format!(
        "graph: context\nnodes:\n  ct: {{ kind: read_volume, path: in.nii, as: image }}\n  \
         f: {{ kind: fcn, in: ct, model: {}, device: cpu, batch: 4, workers: 2 }}\n  \
         save: {{ kind: write_volume, in: f, path: prob.nii }}\n",
        model("context.onnx")
    );
    let g = write_graph(&dir, "g.yaml", &graph);
    voxflow_ok(&["-q", "run", g.to_str().unwrap()]);
    let got = read_any(&dir.join("prob.nii"), Some(StreamType::Prob), None).unwrap();
    let p = got.prob().expect("prob volume");
    assert_eq!(p.dim(), (n, 2, 64, 64));
    for k in 0..n {
        let want = 0.75 * v(k.saturating_sub(1)) + 0.25 * v((k + 1).min(n - 1));
        let d = p
            .slice(ndarray::s![k, 1, .., ..])
            .iter()
            .map(|x| (x - want).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-6, "slice {k}: liver off by {d} from {want}");
    }
}

#[test]
fn context_model_refuses_crops() {
    let dir = temp_dir("fcn-context-crops");
    let graph = format!(
        "graph: bad\nnodes:\n  ct: {{ kind: read_volume, path: \"phantom:64x64x8\" }}\n  \
         lab: {{ kind: read_volume, path: \"phantom:64x64x8\", as: label }}\n  {EQ}\n  \
         crop: {{ kind: crop_resample, image: pre, liver: lab, size: [64, 64] }}\n  \
         f: {{ kind: fcn, in: crop, model: {}, device: cpu }}\n  \
         save: {{ kind: write_volume, in: f, path: out.nii.gz }}\n",
        model("context.onnx")
    );
    let g = write_graph(&dir, "g.yaml", &graph);
    let o = voxflow(&["-q", "run", g.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a context model ran on crops");
    for w in [
        "node `f` (fcn)",
        "context.onnx",
        "voxflow.context_slices",
        "crop_resample",
    ] {
        assert!(err.contains(w), "stderr lacks {w:?}:\n{err}");
    }
    assert_nothing_written(&dir, &["g.yaml"]);
}
