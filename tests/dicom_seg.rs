//! `write_dicom_seg`: SEGs of the real IRCADb 17 series read back with pydicom and highdicom
//! (tests/check_seg.py), and what an input that is not a DICOM series does.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use voxflow_nodes::io::nifti_io::{read_nifti, write_nifti};
use voxflow_runtime::StreamType;

/// The Python with pydicom, highdicom and nibabel (installed by scripts/setup-training.sh).
fn check_python() -> PathBuf {
    let py = root().join(".venv-train/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run `bash scripts/setup-training.sh` (it installs pydicom and highdicom \
         for tests/check_seg.py)",
        py.display()
    );
    py
}

/// Runs tests/check_seg.py: frame positions and references, masks, attributes, codes.
fn check_seg(seg: &Path, dicom: &Path, label: &Path) {
    let o = Command::new(check_python())
        .arg(root().join("tests/check_seg.py"))
        .args([seg, dicom, label])
        .output()
        .expect("run tests/check_seg.py");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "check_seg.py failed:\n{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprint!("{out}");
}

fn run_graph(dir: &Path, text: &str, quiet: bool) -> std::process::Output {
    let g = write_graph(dir, "g.yaml", text);
    let mut args = vec!["run", g.to_str().unwrap()];
    if quiet {
        args.insert(0, "-q");
    }
    voxflow(&args)
}

#[test]
fn seg_of_the_real_series_matches_the_label_volume() {
    let Some(dicom) = data_file("ircadb17_dicom") else {
        return;
    };
    let label = data_file("ircadb17_label.nii.gz").unwrap();
    let dir = temp_dir("seg-real");
    // The label comes from a NIfTI file, the identifiers from the series (`source`).
    let o = run_graph(
        &dir,
        &format!(
            "graph: seg\nnodes:\n  ct: {{ kind: read_volume, path: \"{}\" }}\n  \
             truth: {{ kind: read_volume, path: \"{}\", as: label }}\n  \
             seg: {{ kind: write_dicom_seg, label: truth, source: ct, path: truth.seg.dcm }}\n",
            dicom.display(),
            label.display()
        ),
        true,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(files(&dir), ["g.yaml", "truth.seg.dcm"]);
    check_seg(&dir.join("truth.seg.dcm"), &dicom, &label);
}

#[test]
fn seg_of_a_pipeline_output_takes_the_identifiers_from_its_stream() {
    let Some(dicom) = data_file("ircadb17_dicom") else {
        return;
    };
    let dir = temp_dir("seg-pipeline");
    // The identifiers travel from read_volume through window, equalise, FCN and argmax. The
    // tiny test model has no lesion class: the lesion segment is empty (no frames).
    let model = root().join("nodes/kernels/onnx/tests/models/tiny_fcn.onnx");
    let o = run_graph(
        &dir,
        &format!(
            "graph: seg\nnodes:\n  ct: {{ kind: read_volume, path: \"{}\" }}\n  \
             w: {{ kind: hu_window, in: ct, min: -100, max: 400 }}\n  \
             eq: {{ kind: equalize, in: w }}\n  \
             liver: {{ kind: fcn, in: eq, model: \"{}\", device: cpu }}\n  \
             mask: {{ kind: argmax, in: liver }}\n  \
             save: {{ kind: write_volume, in: mask, path: pred.nii.gz }}\n  \
             seg: {{ kind: write_dicom_seg, label: mask, path: pred.seg.dcm }}\n",
            dicom.display(),
            model.display()
        ),
        true,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_seg(&dir.join("pred.seg.dcm"), &dicom, &dir.join("pred.nii.gz"));
}

#[test]
fn label_off_the_series_grid_is_an_error() {
    let Some(dicom) = data_file("ircadb17_dicom") else {
        return;
    };
    let small = data_file("ircadb17_small_label.nii.gz").unwrap();
    let label = data_file("ircadb17_label.nii.gz").unwrap();
    let dir = temp_dir("seg-grid");
    let v = read_nifti(&label, Some(StreamType::Label)).unwrap();
    // Origin 5 mm off along the slice axis; then the row axis reversed.
    let mut shifted = v.header.clone();
    shifted.affine[2][3] += 5.0;
    write_nifti(&dir.join("shifted.nii"), &shifted, &v.data).unwrap();
    let mut flipped = v.header.clone();
    flipped.affine[1][1] = -flipped.affine[1][1];
    write_nifti(&dir.join("flipped.nii"), &flipped, &v.data).unwrap();
    for (file, why) in [
        (
            small,
            "has 119 slices of 512x512 (rows x columns), the label 119 of 128x128",
        ),
        (
            dir.join("shifted.nii"),
            "label slice 0 lies at [0.0, 0.0, 5.0]",
        ),
        (dir.join("flipped.nii"), "the label's in-plane axes differ"),
    ] {
        let o = run_graph(
            &dir,
            &format!(
                "graph: seg\nnodes:\n  ct: {{ kind: read_volume, path: \"{}\" }}\n  \
                 lab: {{ kind: read_volume, path: \"{}\", as: label }}\n  \
                 seg: {{ kind: write_dicom_seg, label: lab, source: ct, path: lab.seg.dcm }}\n",
                dicom.display(),
                file.display()
            ),
            true,
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{}", file.display());
        assert!(
            err.contains("node `seg` (write_dicom_seg)") && err.contains(why),
            "{}: {err}",
            file.display()
        );
        assert!(!dir.join("lab.seg.dcm").exists());
    }
}

/// A label NIfTI (no DICOM identifiers) made from the phantom.
fn nifti_label(dir: &Path) -> PathBuf {
    let o = run_graph(
        dir,
        "graph: mk\nnodes:\n  p: { kind: read_volume, path: \"phantom:small\", as: label }\n  \
         save: { kind: write_volume, in: p, path: in.nii.gz }\n",
        true,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_file(dir.join("g.yaml")).unwrap();
    dir.join("in.nii.gz")
}

#[test]
fn non_dicom_input_with_error_fails_at_its_header_and_nothing_is_written() {
    let dir = temp_dir("seg-error");
    let nii = nifti_label(&dir);
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("blocker"), "").unwrap();
    let keep = "  keep: { kind: write_volume, in: lab, path: out/lab.nii.gz }\n";
    // `late` can fail only after its whole input (40 slices, more than an edge holds) arrived,
    // as its folder cannot be made; the SEG node fails on the header, so its error is reported.
    let late = "  late: { kind: write_volume, in: lab, path: out/blocker/late.nii.gz }\n";
    let nii_name = nii.display().to_string();
    for (input, seg, why, late) in [
        (nii_name.as_str(), "label: lab", nii_name.as_str(), late),
        ("phantom:small", "label: lab", "phantom seed", late),
        // With `source`, the check comes after both streams are read; still nothing written.
        (
            nii_name.as_str(),
            "label: lab, source: lab",
            nii_name.as_str(),
            "",
        ),
    ] {
        let o = run_graph(
            &dir,
            &format!(
                "graph: seg\nnodes:\n  lab: {{ kind: read_volume, path: \"{input}\", as: label }}\n\
                 {keep}{late}  seg: {{ kind: write_dicom_seg, {seg}, path: out/lab.seg.dcm, \
                 if_unavailable: error }}\n"
            ),
            true,
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{input} {seg}: run succeeded");
        assert!(
            err.contains("node `seg` (write_dicom_seg)")
                && err.contains("is not a DICOM series")
                && err.contains(why)
                && err.contains("lab.seg.dcm"),
            "{input} {seg}: {err}"
        );
        assert_eq!(files(&out), ["blocker"], "{input} {seg}");
    }
}

#[test]
fn non_dicom_input_with_skip_writes_no_seg_and_logs_one_line() {
    let dir = temp_dir("seg-skip");
    let nii = nifti_label(&dir);
    for input in [nii.display().to_string(), "phantom:small".into()] {
        let out = dir.join("out");
        let _ = std::fs::remove_dir_all(&out);
        let o = run_graph(
            &dir,
            &format!(
                "graph: seg\nnodes:\n  lab: {{ kind: read_volume, path: \"{input}\", as: label }}\n  \
                 save: {{ kind: write_volume, in: lab, path: out/lab.nii.gz }}\n  \
                 seg: {{ kind: write_dicom_seg, label: lab, path: out/lab.seg.dcm, \
                 if_unavailable: skip }}\n"
            ),
            false,
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{input}: {err}");
        assert_eq!(files(&out), ["lab.nii.gz"], "{input}");
        let lines: Vec<&str> = err.lines().filter(|l| l.contains("SEG")).collect();
        assert_eq!(lines.len(), 1, "{input}: {err}");
        assert!(
            lines[0].contains("WARN")
                && lines[0].contains("seg: the input")
                && lines[0].contains("is not a DICOM series: no DICOM SEG written"),
            "{input}: {err}"
        );
    }
}

#[test]
fn shipped_graphs_skip_the_seg_of_a_phantom() {
    let dir = temp_dir("seg-shipped");
    let models = root().join("nodes/kernels/onnx/tests/models");
    let out = dir.join("ct.nii.gz");
    let o = voxflow(&[
        "run",
        root().join("graphs/ct_liver_lesion.yaml").to_str().unwrap(),
        "--set",
        "input=phantom:small",
        "--set",
        &format!("output={}", out.display()),
        "--set",
        &format!("liver_model={}", models.join("tiny_fcn.onnx").display()),
        "--set",
        &format!(
            "lesion_model={}",
            models.join("identity_lesion_level.onnx").display()
        ),
        "--set",
        "device=cpu",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(out.exists());
    assert!(!dir.join("ct.seg.dcm").exists());
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("no DICOM SEG written"))
            .count(),
        1,
        "{err}"
    );
}
