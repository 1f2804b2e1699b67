//! `voxflow segment`: the shipped graphs in one command on a real NIfTI CT and the real DICOM
//! series, the files it promises, and its refusals.

mod common;

use common::*;
use ndarray::ArrayD;
use nifti::{IntoNdArray, NiftiHeader, NiftiObject, ReaderOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Header and voxels of a label NIfTI file.
fn read_labels(p: &Path) -> (NiftiHeader, ArrayD<u8>) {
    let obj = ReaderOptions::new()
        .read_file(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let h = obj.header().clone();
    let v = obj
        .into_volume()
        .into_ndarray::<u8>()
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (h, v)
}

/// The geometry fields of a header: dims, voxel sizes, sform and qform.
fn geometry(h: &NiftiHeader) -> String {
    format!(
        "dim {:?} pixdim {:?} sform {} {:?} {:?} {:?} qform {} {:?} {:?}",
        h.dim,
        h.pixdim,
        h.sform_code,
        h.srow_x,
        h.srow_y,
        h.srow_z,
        h.qform_code,
        [h.quatern_b, h.quatern_c, h.quatern_d],
        [h.quatern_x, h.quatern_y, h.quatern_z],
    )
}

/// Checks the masks against seg.nii.gz (voxel by voxel, same geometry) and returns the number
/// of liver and lesion voxels.
fn check_masks(out: &Path, lesions: bool) -> (usize, usize) {
    let (hs, seg) = read_labels(&out.join("seg.nii.gz"));
    assert!(seg.iter().all(|&l| l <= 2), "labels outside 0..2");
    let (hl, liver) = read_labels(&out.join("liver.nii.gz"));
    assert_eq!(geometry(&hl), geometry(&hs), "liver.nii.gz geometry");
    assert_eq!(
        liver,
        seg.mapv(|l| u8::from(l >= 1)),
        "liver mask != seg >= 1"
    );
    let n_lesion = if lesions {
        let (hm, les) = read_labels(&out.join("liver_lesions.nii.gz"));
        assert_eq!(
            geometry(&hm),
            geometry(&hs),
            "liver_lesions.nii.gz geometry"
        );
        assert_eq!(
            les,
            seg.mapv(|l| u8::from(l == 2)),
            "lesion mask != seg == 2"
        );
        les.iter().filter(|&&v| v == 1).count()
    } else {
        assert!(!out.join("liver_lesions.nii.gz").exists());
        0
    };
    (liver.iter().filter(|&&v| v == 1).count(), n_lesion)
}

fn segment(args: &[&str]) -> std::process::Output {
    let o = voxflow(args);
    assert!(
        o.status.success(),
        "voxflow {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

#[test]
fn nifti_ct_gives_labels_masks_and_report() {
    let Some(ct) = data_file("ircadb01_small_ct.nii.gz") else {
        return;
    };
    let out = temp_dir("segment-nifti").join("out");
    std::fs::create_dir_all(&out).unwrap();
    // A DICOM SEG of an earlier run into the same folder must not look like this run's.
    std::fs::write(out.join("seg.dcm"), "stale").unwrap();
    let o = segment(&[
        "segment",
        ct.to_str().unwrap(),
        "--modality",
        "ct",
        "-o",
        out.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert_eq!(
        files(&out),
        [
            "liver.nii.gz",
            "liver_lesions.nii.gz",
            "seg.html",
            "seg.nii.gz",
            "seg.stats.json"
        ]
    );
    let listed = String::from_utf8_lossy(&o.stdout);
    for f in files(&out) {
        assert!(listed.contains(&f), "{f} not in the list:\n{listed}");
    }
    let (liver, _) = check_masks(&out, true);
    // The stats are those of this segmentation.
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("seg.stats.json")).unwrap())
            .unwrap();
    assert!(liver > 1000, "only {liver} liver voxels");
    assert!(stats.to_string().contains("liver"), "{stats}");
    let html = std::fs::read_to_string(out.join("seg.html")).unwrap();
    assert!(html.contains("<html") && html.contains("ircadb01_small_ct"));
}

/// The Python with pydicom and highdicom (installed by scripts/setup-training.sh).
fn check_python() -> PathBuf {
    let py = root().join(".venv-train/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run `bash scripts/setup-training.sh`",
        py.display()
    );
    py
}

#[test]
fn dicom_series_takes_the_modality_from_its_tag_and_gets_a_dicom_seg() {
    let Some(dicom) = data_file("ircadb17_dicom") else {
        return;
    };
    let out = temp_dir("segment-dicom").join("out");
    let o = segment(&[
        "segment",
        dicom.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        files(&out),
        [
            "liver.nii.gz",
            "liver_lesions.nii.gz",
            "seg.dcm",
            "seg.html",
            "seg.nii.gz",
            "seg.stats.json"
        ]
    );
    let listed = String::from_utf8_lossy(&o.stdout);
    assert!(
        listed.contains("CT liver and lesion") && listed.contains("seg.dcm"),
        "{listed}"
    );
    let (liver, _) = check_masks(&out, true);
    assert!(liver > 10_000, "only {liver} liver voxels");
    // The SEG holds the same labels, frame by frame on the source slices (tests/check_seg.py).
    let c = Command::new(check_python())
        .arg(root().join("tests/check_seg.py"))
        .args([out.join("seg.dcm"), dicom.clone(), out.join("seg.nii.gz")])
        .output()
        .expect("run tests/check_seg.py");
    assert!(
        c.status.success(),
        "check_seg.py failed:\n{}{}",
        String::from_utf8_lossy(&c.stdout),
        String::from_utf8_lossy(&c.stderr)
    );
}

#[test]
fn refusals_name_the_problem_and_write_nothing() {
    let dir = temp_dir("segment-refusals");
    let nii = dir.join("scan.nii.gz");
    std::fs::write(&nii, "not a NIfTI file").unwrap();
    let out = dir.join("out");
    let o_dir = out.to_str().unwrap();
    let err = |args: &[&str]| {
        let o = voxflow(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = err(&["segment", nii.to_str().unwrap(), "-o", o_dir]);
    assert!(
        e.contains("scan.nii.gz") && e.contains("--modality ct or --modality mr"),
        "{e}"
    );
    let e = err(&[
        "segment",
        nii.to_str().unwrap(),
        "--modality",
        "ct",
        "-o",
        o_dir,
        "--set",
        "output=x.nii.gz",
    ]);
    assert!(
        e.contains("--set output") && e.contains("sets `output` itself"),
        "{e}"
    );
    let e = err(&[
        "segment",
        dir.join("none.nii").to_str().unwrap(),
        "--modality",
        "mr",
        "-o",
        o_dir,
    ]);
    assert!(e.contains("none.nii: no such file"), "{e}");
    // A file that is not a volume fails the run: no output, no temporary file.
    let e = err(&[
        "segment",
        nii.to_str().unwrap(),
        "--modality",
        "ct",
        "-o",
        o_dir,
        "-q",
    ]);
    assert!(e.contains("scan.nii.gz"), "{e}");
    assert!(files(&out).is_empty(), "{:?}", files(&out));
    // A folder that is no DICOM series.
    let e = err(&["segment", out.to_str().unwrap(), "-o", o_dir]);
    assert!(e.contains("no DICOM file with a Modality tag"), "{e}");
    // VOXFLOW_HOME, when set, is where the graphs must be.
    let o = Command::new(env!("CARGO_BIN_EXE_voxflow"))
        .args([
            "segment",
            nii.to_str().unwrap(),
            "--modality",
            "ct",
            "-o",
            o_dir,
        ])
        .env("VOXFLOW_HOME", &dir)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && e.contains("graphs/ct_liver_lesion.yaml")
            && e.contains("VOXFLOW_HOME"),
        "{e}"
    );
}

#[test]
fn an_installed_copy_finds_graphs_and_models_beside_the_program() {
    // <prefix>/bin/voxflow with <prefix>/share/voxflow/{graphs,models}: the pip wheel's layout.
    let prefix = temp_dir("segment-installed");
    let bin = prefix.join("bin");
    let share = prefix.join("share/voxflow");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(share.join("graphs")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_voxflow"), bin.join("voxflow")).unwrap();
    // A graph that says where it was found; its input and output are what segment sets.
    std::fs::write(
        share.join("graphs/mri_liver.yaml"),
        "graph: installed-copy\nparams: { input: {}, output: {}, report: {} }\nnodes: {}\n",
    )
    .unwrap();
    let nii = prefix.join("scan.nii");
    std::fs::write(&nii, "x").unwrap();
    let o = Command::new(bin.join("voxflow"))
        .args(["segment", nii.to_str().unwrap(), "--modality", "mr", "-o"])
        .arg(prefix.join("out"))
        .env_remove("VOXFLOW_HOME")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    // It took the installed graph (which lacks the nodes segment needs), not the source tree's.
    assert!(
        !o.status.success() && e.contains(&*share.join("graphs/mri_liver.yaml").to_string_lossy()),
        "{e}"
    );
}
