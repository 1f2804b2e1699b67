//! The shipped MRI graph end to end on a real CHAOS T2 volume (N4, normalisation, FCN, CRF,
//! report). The shipped `models/mr_liver.onnx` was trained on all 14 CHAOS volumes, this one
//! included: the test shows the graph runs and yields a plausible liver, not held-out accuracy
//! (that is docs/RESULTS.md's 2-fold figure).

mod common;

use common::*;
use voxflow_nodes::io::read_volume::read_any;
use voxflow_runtime::{StreamType, VolumeData};

fn labels(p: &std::path::Path) -> ndarray::Array3<u8> {
    match read_any(p, Some(StreamType::Label), None)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .data
    {
        VolumeData::Label(a) => a,
        _ => panic!("{} is not a label volume", p.display()),
    }
}

#[test]
fn mri_graph_segments_a_real_chaos_liver() {
    let Some(image) = data_file("chaos_mr_t2_01_image.nii.gz") else {
        return;
    };
    let truth = data_file("chaos_mr_t2_01_label.nii.gz").unwrap();
    let dir = temp_dir("mri-chaos01");
    let out = dir.join("seg.nii.gz");
    voxflow_ok(&[
        "-q",
        "run",
        root().join("graphs/mri_liver.yaml").to_str().unwrap(),
        "--set",
        &format!("input={}", image.display()),
        "--set",
        &format!("output={}", out.display()),
        "--set",
        &format!("truth={}", truth.display()),
    ]);
    for made in ["seg.html", "seg.stats.json", "seg_overlays"] {
        assert!(dir.join(made).exists(), "the report's {made} is missing");
    }
    let pred = labels(&out);
    let gt = labels(&truth);
    assert_eq!(pred.dim(), gt.dim(), "the output keeps the input's grid");
    assert!(pred.iter().all(|&v| v <= 1), "the MRI graph labels liver only");
    let (mut both, mut p, mut g) = (0usize, 0usize, 0usize);
    for (&a, &b) in pred.iter().zip(gt.iter()) {
        let (a, b) = (a >= 1, b >= 1);
        both += (a && b) as usize;
        p += a as usize;
        g += b as usize;
    }
    let dice = 2.0 * both as f64 / (p + g) as f64;
    eprintln!("CHAOS 01 liver Dice {dice:.4} ({p} predicted, {g} true voxels)");
    assert!(dice > 0.85, "liver Dice {dice:.4} on a training volume");
    let _ = std::fs::remove_dir_all(&dir);
}
