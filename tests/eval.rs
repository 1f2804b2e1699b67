//! `voxflow eval`: predictions mode and graph mode over small manifests with failing cases.

mod common;

use common::{temp_dir, voxflow, write_graph};
use serde_json::Value;
use std::path::Path;
use voxflow_nodes::io::nifti_io::write_nifti;
use voxflow_runtime::stream::{StreamType, VolumeData};
use voxflow_runtime::{Header, Volume};

fn write_labels(path: &Path, shape: [usize; 3], f: impl Fn(usize, usize, usize) -> u8) {
    let mut v = Volume::zeros(Header::new(StreamType::Label, shape, [2.0, 1.0, 1.0]));
    let VolumeData::Label(a) = &mut v.data else {
        unreachable!()
    };
    for ((k, j, i), x) in a.indexed_iter_mut() {
        *x = f(k, j, i);
    }
    write_nifti(path, &v.header, &v.data).unwrap();
}

/// Liver box 4x6x6 with a 2x2x2 lesion; `shift` moves everything along i.
fn case(k: usize, j: usize, i: usize, shift: usize) -> u8 {
    let i = i as isize - shift as isize;
    let inside = |lo: isize, hi: isize, x: isize| (lo..hi).contains(&x);
    if inside(2, 4, k as isize) && inside(3, 5, j as isize) && inside(3, 5, i) {
        2
    } else {
        u8::from(inside(1, 5, k as isize) && inside(2, 8, j as isize) && inside(2, 8, i))
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn predictions_mode_with_a_bad_case() {
    let d = temp_dir("eval-preds");
    let sh = [6, 10, 12];
    write_labels(&d.join("t1.nii.gz"), sh, |k, j, i| case(k, j, i, 0));
    write_labels(&d.join("p1.nii.gz"), sh, |k, j, i| case(k, j, i, 0));
    write_labels(&d.join("t2.nii.gz"), sh, |k, j, i| case(k, j, i, 0));
    write_labels(&d.join("p2.nii.gz"), sh, |k, j, i| case(k, j, i, 1));
    // Relative paths resolve against the manifest's folder.
    std::fs::write(
        d.join("cases.csv"),
        "id,pred,truth\n# a comment\ncase1,p1.nii.gz,t1.nii.gz\ncase2,p2.nii.gz,t2.nii.gz\nbroken,missing.nii.gz,t1.nii.gz\n",
    )
    .unwrap();
    let out = d.join("out");
    let o = voxflow(&[
        "-q",
        "eval",
        "--predictions",
        "--manifest",
        d.join("cases.csv").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "a failed case makes the exit status non-zero"
    );
    assert!(
        err.contains("case broken failed: manifest line 5:") && err.contains("missing.nii.gz"),
        "{err}"
    );
    assert!(err.contains("1 of 3 cases failed"), "{err}");

    let csv = read(&out.join("metrics.csv"));
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 6, "{csv}");
    assert_eq!(rows[0][..4], ["id", "class", "status", "dice"]);
    assert_eq!(rows[1][..4], ["case1", "liver", "ok", "1"]);
    assert_eq!(rows[2][..4], ["case1", "lesion", "ok", "1"]);
    assert_eq!(rows[3][..3], ["case2", "liver", "ok"]);
    assert_eq!(rows[5][..3], ["broken", "", "failed"]);
    assert!(
        csv.lines().last().unwrap().contains("missing.nii.gz"),
        "{csv}"
    );
    // Case 2: liver 4*6*6 = 144 voxels shifted one column: overlap 4*6*5 = 120, Dice 240/288.
    let dice2: f64 = rows[3][3].parse().unwrap();
    assert!((dice2 - 240.0 / 288.0).abs() < 1e-12);
    let j: Value = serde_json::from_str(&read(&out.join("cases/case2.json"))).unwrap();
    assert_eq!(j["liver"]["dice"].as_f64().unwrap(), dice2);
    assert_eq!(j["lesion"]["detection"]["true_positive"], 1);
    assert!(!out.join("cases/broken.json").exists());

    let md = read(&out.join("summary.md"));
    let (mean, sd) = ((1.0 + dice2) / 2.0, (1.0 - dice2) / 2.0);
    assert!(md.contains("2 of 3 cases evaluated, 1 failed"), "{md}");
    assert!(
        md.contains(&format!("| dice | {mean:.4} ± {sd:.4} | 2 | 0 |")),
        "{md}"
    );
    assert!(
        md.contains("## lesion") && md.contains("2 of 2 truth lesions detected"),
        "{md}"
    );
    assert!(
        md.contains("## Failed cases") && md.contains("| broken |"),
        "{md}"
    );
}

#[test]
fn graph_mode_runs_the_segmentation_graph_per_case() {
    let d = temp_dir("eval-graph");
    let sh = [6, 10, 12];
    write_labels(&d.join("t1.nii.gz"), sh, |k, j, i| case(k, j, i, 0));
    write_labels(&d.join("t2.nii.gz"), sh, |k, j, i| case(k, j, i, 0));
    write_labels(&d.join("in2.nii.gz"), sh, |k, j, i| case(k, j, i, 2));
    write_labels(&d.join("other_grid.nii.gz"), [6, 10, 13], |k, j, i| {
        case(k, j, i, 0)
    });
    // Stand-in for a segmentation model: the "prediction" is a label file read as is.
    let g = write_graph(
        &d,
        "seg.yaml",
        "graph: seg\nparams:\n  input: {}\n  output: { default: out.nii.gz }\nnodes:\n  \
         src: { kind: read_volume, path: $input, as: label }\n  save: { kind: write_volume, in: src, path: $output }\n",
    );
    let manifest = d.join("m.csv");
    std::fs::write(
        &manifest,
        "id,input,truth\nsame,t1.nii.gz,t1.nii.gz\nshifted,in2.nii.gz,t2.nii.gz\ngrid,other_grid.nii.gz,t1.nii.gz\nnofile,nope.nii.gz,t1.nii.gz\n",
    )
    .unwrap();
    let out = d.join("out");
    let args = [
        "-q",
        "eval",
        g.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let o = voxflow(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("case grid failed") && err.contains("different geometry"),
        "{err}"
    );
    assert!(
        err.contains("case nofile failed")
            && err.contains("seg.yaml")
            && err.contains("nope.nii.gz"),
        "{err}"
    );
    assert!(err.contains("2 of 4 cases failed"), "{err}");
    assert!(out.join("pred/same.nii.gz").exists() && out.join("pred/shifted.nii.gz").exists());
    let same: Value = serde_json::from_str(&read(&out.join("cases/same.json"))).unwrap();
    assert_eq!(same["liver"]["dice"], 1.0);
    assert_eq!(same["liver"]["msd_mm"], 0.0);
    let shifted: Value = serde_json::from_str(&read(&out.join("cases/shifted.json"))).unwrap();
    // Shift of 2 columns of 1 mm: overlap 4*6*4 = 96 of 144.
    assert!((shifted["liver"]["dice"].as_f64().unwrap() - 192.0 / 288.0).abs() < 1e-12);
    assert_eq!(shifted["liver"]["msd_mm"], 2.0);
    assert_eq!(shifted["lesion"]["dice"], 0.0);
    assert_eq!(shifted["lesion"]["detection"]["missed"], 1);

    // Without failing cases the exit status is 0; the previous outputs are replaced. A manifest
    // named without a folder resolves against the current directory.
    std::fs::write(&manifest, "id,input,truth\nsame,t1.nii.gz,t1.nii.gz\n").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_voxflow"))
        .args([
            "-q",
            "eval",
            "seg.yaml",
            "--manifest",
            "m.csv",
            "--out",
            "out",
        ])
        .current_dir(&d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = read(&out.join("metrics.csv"));
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(read(&out.join("summary.md")).contains("1 of 1 cases evaluated, 0 failed"));
    // The cases run with batch's runner: a status per case, and a rerun skips the done case and
    // scores it the same; a changed input reruns it.
    assert!(out.join("runs/same/status.json").exists());
    let rerun = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_voxflow"))
            .args(args)
            .current_dir(&d)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let args = ["eval", "seg.yaml", "--manifest", "m.csv", "--out", "out"];
    let err = rerun(&args);
    assert!(err.contains("eval: 1 cases; 1 done before"), "{err}");
    assert_eq!(read(&out.join("metrics.csv")), csv);
    std::fs::write(&manifest, "id,input,truth\nsame,in2.nii.gz,t1.nii.gz\n").unwrap();
    let err = rerun(&args);
    assert!(err.contains("running 1: 1 input changed"), "{err}");
    assert_ne!(read(&out.join("metrics.csv")), csv);

    // A graph without the prediction param is refused before any case runs.
    let o = voxflow(&[
        "eval",
        g.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--pred-param",
        "result",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("no param `result`") && err.contains("input, output"),
        "{err}"
    );
}

#[test]
fn manifest_errors_name_the_line() {
    let d = temp_dir("eval-manifest");
    let m = d.join("m.csv");
    let out = d.join("out");
    for (text, want) in [
        ("pred,truth\na,b\n", "needs an `id` column"),
        ("id,pred,truth\na,b\n", "m.csv:2: 2 cells, the header has 3"),
        (
            "id,pred,truth\na,b,c\na,d,e\n",
            "m.csv:3: case id `a` is repeated",
        ),
        ("id,pred,truth\n../x,b,c\n", "case id `../x`"),
        ("id,pred\na,b\n", "no `truth` column"),
    ] {
        std::fs::write(&m, text).unwrap();
        let o = voxflow(&[
            "eval",
            "--predictions",
            "--manifest",
            m.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{text}: {err}");
    }
    assert!(
        !out.exists(),
        "nothing is written when the manifest is wrong"
    );
}
