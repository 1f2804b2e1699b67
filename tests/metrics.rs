//! The `metrics` node through graph runs: hand-computable cases, the kernel's oracle fixtures,
//! empty masks, geometry errors, and real IRCADb labels vs a perturbed copy (with the oracle).

mod common;

use common::{data_file, root, temp_dir, voxflow, voxflow_ok, write_graph};
use serde_json::Value;
use std::path::{Path, PathBuf};
use voxflow_nodes::io::nifti_io::write_nifti;
use voxflow_nodes::io::phantom::Phantom;
use voxflow_nodes::io::read_volume::read_any;
use voxflow_runtime::stream::{StreamType, VolumeData};
use voxflow_runtime::{Header, Volume};

/// A label volume of shape `(nk, nj, ni)` with `f(k, j, i)` as labels.
fn label_volume(
    shape: [usize; 3],
    spacing: [f64; 3],
    f: impl Fn(usize, usize, usize) -> u8,
) -> Volume {
    let mut v = Volume::zeros(Header::new(StreamType::Label, shape, spacing));
    let VolumeData::Label(a) = &mut v.data else {
        unreachable!()
    };
    for ((k, j, i), x) in a.indexed_iter_mut() {
        *x = f(k, j, i);
    }
    v
}

fn write(v: &Volume, path: &Path) {
    write_nifti(path, &v.header, &v.data).unwrap();
}

/// `graphs/eval_ct.yaml` on one pair; returns the JSON written.
fn run_eval_graph(dir: &Path, pred: &Path, truth: &Path, extra: &[&str]) -> Value {
    let json = dir.join("m.json");
    let graph = root().join("graphs/eval_ct.yaml");
    let sets = [
        format!("pred={}", pred.display()),
        format!("truth={}", truth.display()),
        format!("json={}", json.display()),
        format!("csv={}", dir.join("m.csv").display()),
    ];
    let mut args: Vec<&str> = vec!["-q", "run", graph.to_str().unwrap()];
    for s in &sets {
        args.extend(["--set", s]);
    }
    args.extend(extra);
    voxflow_ok(&args);
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs() || (a - b).abs() <= 1e-12
}

#[test]
fn hand_computed_cubes_and_detection() {
    let d = temp_dir("metrics-hand");
    // Truth: two lesions (label 2) in a liver (label 1); spacing dk=2, dj=1, di=0.5 mm.
    let sp = [2.0, 1.0, 0.5];
    let truth = label_volume([8, 10, 12], sp, |k, j, i| {
        let liver = (1..7).contains(&k) && (1..9).contains(&j) && (1..11).contains(&i);
        let les_a = (2..4).contains(&k) && (2..4).contains(&j) && (2..4).contains(&i);
        let les_b = (4..6).contains(&k) && (6..8).contains(&j) && (8..10).contains(&i);
        if les_a || les_b {
            2
        } else {
            u8::from(liver)
        }
    });
    // Pred: the same liver shifted one slice up (k+1), only lesion A found, plus a false lesion.
    let pred = label_volume([8, 10, 12], sp, |k, j, i| {
        let liver = (2..8).contains(&k) && (1..9).contains(&j) && (1..11).contains(&i);
        let les_a = (2..4).contains(&k) && (2..4).contains(&j) && (2..4).contains(&i);
        let fp = k == 6 && j == 1 && i == 10;
        if les_a || fp {
            2
        } else {
            u8::from(liver)
        }
    });
    let (pp, tp) = (d.join("pred.nii.gz"), d.join("truth.nii.gz"));
    write(&pred, &pp);
    write(&truth, &tp);
    let j = run_eval_graph(&d, &pp, &tp, &[]);
    // Liver boxes of 6x8x10 = 480 voxels, overlap 5 slices = 400: Dice 800/960, VOE 1-400/560.
    let liver = &j["liver"];
    assert!(
        close(liver["dice"].as_f64().unwrap(), 800.0 / 960.0),
        "{liver}"
    );
    assert!(close(liver["voe"].as_f64().unwrap(), 1.0 - 400.0 / 560.0));
    assert_eq!(liver["rvd"], 0.0);
    // The top/bottom faces are 2 mm (one slice) from the other surface; MSD = 2 mm.
    assert_eq!(liver["msd_mm"], 2.0);
    // Lesions: truth 8+8 voxels, pred 8+1; overlap 8.
    let les = &j["lesion"];
    assert!(close(les["dice"].as_f64().unwrap(), 16.0 / 25.0), "{les}");
    assert!(close(les["rvd"].as_f64().unwrap(), (9.0 - 16.0) / 16.0));
    let det = &les["detection"];
    assert_eq!(det["true_positive"], 1);
    assert_eq!(det["missed"], 1);
    assert_eq!(det["false_positive"], 1);
    assert_eq!(det["truth_lesions"], 2);
    assert_eq!(det["lesions"][0]["volume_mm3"], 8.0);
    assert!(liver.get("detection").is_none());
    // CSV: one row per class, same numbers.
    let csv = std::fs::read_to_string(d.join("m.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0][..4], ["class", "dice", "voe", "rvd"]);
    assert_eq!(rows[1][0], "liver");
    assert!(close(rows[1][1].parse().unwrap(), 800.0 / 960.0));
    assert_eq!(rows[2][0], "lesion");
    assert_eq!(rows[2][9..12], ["1", "1", "1"]);
}

#[test]
fn configurable_classes() {
    let d = temp_dir("metrics-classes");
    let sp = [1.0, 1.0, 1.0];
    let truth = label_volume([4, 4, 4], sp, |k, _, _| k as u8);
    let pred = label_volume([4, 4, 4], sp, |k, _, i| if i == 0 { 0 } else { k as u8 });
    let (pp, tp) = (d.join("p.nii"), d.join("t.nii"));
    write(&pred, &pp);
    write(&truth, &tp);
    // A graph that sets the classes itself.
    let g = write_graph(
        &d,
        "g.yaml",
        &format!(
            "graph: g\nnodes:\n  p: {{ kind: read_volume, path: {} }}\n  t: {{ kind: read_volume, path: {} }}\n  \
             m: {{ kind: metrics, pred: p, truth: t, classes: [\"top:==3\", \"mid:1,2\"], detection: [top], json: {} }}\n",
            pp.display(),
            tp.display(),
            d.join("c.json").display()
        ),
    );
    voxflow_ok(&["-q", "run", g.to_str().unwrap()]);
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("c.json")).unwrap()).unwrap();
    let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["mid", "top"]);
    // top: 16 voxels, 12 predicted: Dice 24/28.
    assert!(close(j["top"]["dice"].as_f64().unwrap(), 24.0 / 28.0));
    assert!(close(j["mid"]["rvd"].as_f64().unwrap(), -0.25));
    assert_eq!(j["top"]["detection"]["true_positive"], 1);

    // Bad class specs and unknown detection classes are check errors with the graph line.
    let bad = write_graph(
        &d,
        "bad.yaml",
        &format!(
            "graph: bad\nnodes:\n  p: {{ kind: read_volume, path: {} }}\n  \
             m: {{ kind: metrics, pred: p, truth: p, classes: [\"liver>=1\"], json: x.json }}\n",
            pp.display()
        ),
    );
    let o = voxflow(&["check", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("bad.yaml:4") && err.contains("liver>=1") && err.contains("NAME:RULE"),
        "{err}"
    );
    let bad = write_graph(
        &d,
        "bad2.yaml",
        &format!(
            "graph: bad\nnodes:\n  p: {{ kind: read_volume, path: {} }}\n  \
             m: {{ kind: metrics, pred: p, truth: p, classes: [\"liver:>=1\"] }}\n",
            pp.display()
        ),
    );
    let o = voxflow(&["check", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`lesion` is not one of the classes (liver)"),
        "{err}"
    );
    assert!(err.contains("set `json` and/or `csv`"), "{err}");
}

#[test]
fn empty_masks_are_null_with_notes() {
    let d = temp_dir("metrics-empty");
    let sp = [2.0, 0.8, 0.8];
    let truth = label_volume([5, 6, 7], sp, |k, j, i| {
        u8::from((1..3).contains(&k) && j > 1 && i > 2)
    });
    let pred = label_volume([5, 6, 7], sp, |_, _, _| 0);
    let (pp, tp) = (d.join("p.nii.gz"), d.join("t.nii.gz"));
    write(&pred, &pp);
    write(&truth, &tp);
    let j = run_eval_graph(&d, &pp, &tp, &[]);
    let (liver, les) = (&j["liver"], &j["lesion"]);
    assert_eq!(liver["dice"], 0.0);
    assert_eq!(liver["voe"], 1.0);
    assert_eq!(liver["rvd"], -1.0);
    for m in ["asd_mm", "msd_mm", "hd95_mm"] {
        assert_eq!(liver[m], Value::Null, "{m}");
        assert_eq!(liver[format!("{m}_note")], "pred empty");
        assert_eq!(les[m], Value::Null);
        assert_eq!(les[format!("{m}_note")], "both empty");
    }
    assert_eq!(les["dice"], 1.0);
    assert_eq!(les["voe"], 0.0);
    assert_eq!(les["rvd"], Value::Null);
    assert_eq!(les["rvd_note"], "both empty");
    assert!(liver.get("dice_note").is_none());
    assert_eq!(les["detection"]["truth_lesions"], 0);
    // Swapped: truth empty.
    let j = run_eval_graph(&d, &tp, &pp, &[]);
    assert_eq!(j["liver"]["rvd"], Value::Null);
    assert_eq!(j["liver"]["rvd_note"], "truth empty");
    assert_eq!(j["liver"]["asd_mm_note"], "truth empty");
    // The CSV leaves undefined cells empty and names the reasons.
    let csv = std::fs::read_to_string(d.join("m.csv")).unwrap();
    let liver_row = csv.lines().nth(1).unwrap();
    assert!(liver_row.starts_with("liver,0,1,,,,,"), "{liver_row}");
    assert!(
        liver_row.contains("rvd: truth empty; asd_mm: truth empty"),
        "{liver_row}"
    );
}

#[test]
fn geometry_mismatch_is_an_error_and_writes_nothing() {
    let d = temp_dir("metrics-geometry");
    let a = label_volume([4, 5, 6], [1.0, 1.0, 1.0], |_, _, i| u8::from(i > 2));
    let b = label_volume([4, 5, 7], [1.0, 1.0, 1.0], |_, _, i| u8::from(i > 2));
    let c = label_volume([4, 5, 6], [1.0, 1.0, 0.75], |_, _, i| u8::from(i > 2));
    for (name, v) in [("a.nii", &a), ("b.nii", &b), ("c.nii", &c)] {
        write(v, &d.join(name));
    }
    let graph = root().join("graphs/eval_ct.yaml");
    for (other, want) in [("b.nii", "7x5x4"), ("c.nii", "0.7500")] {
        let json = d.join("never.json");
        let o = voxflow(&[
            "run",
            graph.to_str().unwrap(),
            "--set",
            &format!("pred={}", d.join("a.nii").display()),
            "--set",
            &format!("truth={}", d.join(other).display()),
            "--set",
            &format!("json={}", json.display()),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(
            err.contains("node `metrics` (metrics) at") && err.contains("eval_ct.yaml:"),
            "{err}"
        );
        assert!(err.contains("different geometry"), "{err}");
        assert!(
            err.contains("a.nii") && err.contains(other) && err.contains(want),
            "{err}"
        );
        assert!(!json.exists());
        let left: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".voxflow-tmp"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }
}

// ---- the kernel's oracle fixtures (metrics.py --selftest cases + seeded random cases) ----

fn fixture_mask(hex: &str, shape: [usize; 3], spacing: [f64; 3]) -> Volume {
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let (nj, ni) = (shape[1], shape[2]);
    label_volume(shape, spacing, |k, j, i| {
        let b = (k * nj + j) * ni + i;
        bytes[b / 8] >> (b % 8) & 1
    })
}

#[test]
fn kernel_fixtures_through_a_graph() {
    let d = temp_dir("metrics-fixtures");
    let path = root().join("nodes/kernels/metrics/fixtures/metrics_cases.json");
    let f: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = f["cases"].as_array().unwrap();
    assert!(cases.len() >= 11);
    let to3 = |v: &Value| -> [f64; 3] {
        let a: Vec<f64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        [a[0], a[1], a[2]]
    };
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let sh = to3(&c["shape"]).map(|x| x as usize);
        let sp = to3(&c["spacing"]);
        let (pp, tp) = (
            d.join(format!("{name}_p.nii")),
            d.join(format!("{name}_t.nii")),
        );
        write(&fixture_mask(c["pred"].as_str().unwrap(), sh, sp), &pp);
        write(&fixture_mask(c["truth"].as_str().unwrap(), sh, sp), &tp);
        let j = run_eval_graph(&d, &pp, &tp, &[]);
        let got = &j["liver"];
        for (k, want) in c["expected"].as_object().unwrap() {
            let g = &got[k];
            match (want.as_f64(), g.as_f64()) {
                (Some(w), Some(x)) => assert!(close(x, w), "{name} {k}: {x} vs {w}"),
                _ => assert_eq!(g, want, "{name} {k}"),
            }
        }
        // Every field the node writes is in the fixture (nothing extra, nothing missing).
        let n_want = c["expected"].as_object().unwrap().len();
        assert_eq!(got.as_object().unwrap().len(), n_want, "{name}: {got}");
    }
}

// ---- the phantom's and real IRCADb labels vs a perturbed copy, compared with the Python oracle ----

/// The oracle: ../shared/oracles/metrics.py beside the checkout (`VOXFLOW_ORACLES` overrides
/// the folder; never copied into the project), whose `reference` definition needs numpy, scipy
/// and nibabel, run with the training venv's Python, which `make test` installs
/// (scripts/setup-training.sh). Either missing is a failure, not a skip.
fn oracle_python() -> (PathBuf, PathBuf) {
    let py = root().join(".venv-train/bin/python");
    let dir = std::env::var_os("VOXFLOW_ORACLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/oracles"));
    let script = dir.join("metrics.py");
    assert!(
        script.exists(),
        "the metrics oracle {} is missing: put the shared folder beside the checkout or set \
         VOXFLOW_ORACLES",
        script.display()
    );
    assert!(
        py.exists(),
        "{} is missing: run `bash scripts/setup-training.sh` (numpy, scipy and nibabel for the \
         metrics oracle {})",
        py.display(),
        script.display()
    );
    (py, script)
}

/// Runs the oracle on `truth` and `pred` for the liver (label >= 1) and the lesions (label 2)
/// and checks the metrics `j` that voxflow wrote for them.
fn assert_matches_oracle(name: &str, j: &Value, tp: &Path, pp: &Path) {
    let (py, script) = oracle_python();
    for (class, args) in [
        ("liver", vec!["--label", "1", "--ge"]),
        ("lesion", vec!["--label", "2"]),
    ] {
        let o = std::process::Command::new(&py)
            .arg(&script)
            .args([tp.to_str().unwrap(), pp.to_str().unwrap()])
            .args(&args)
            .args(["--libs", "reference"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r: Value = serde_json::from_slice(&o.stdout).unwrap();
        let r = &r["libs"]["reference"];
        for (ours, theirs) in [
            ("dice", "dice"),
            ("voe", "voe"),
            ("rvd", "rvd"),
            ("asd_mm", "asd"),
            ("msd_mm", "msd"),
            ("hd95_mm", "hd95_pooled"),
        ] {
            let (x, w) = (
                j[class][ours].as_f64().unwrap(),
                r[theirs].as_f64().unwrap(),
            );
            assert!(
                close(x, w),
                "{name} {class} {ours}: voxflow {x} vs oracle {w}"
            );
        }
        assert_eq!(
            j[class]["pred_surface_voxels"], r["n_surface_vox_pred"],
            "{name} {class}"
        );
    }
}

/// Liver shifted two columns and grown by one row; lesions shifted one slice.
fn perturb(v: &Volume) -> Volume {
    let a = v.label().unwrap();
    let [nk, nj, ni] = v.header.shape;
    let mut out = v.clone();
    let VolumeData::Label(b) = &mut out.data else {
        unreachable!()
    };
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let liver = |k: usize, j: usize, i: usize| a[[k, j, i]] >= 1;
                let l =
                    (i >= 2 && liver(k, j, i - 2)) || (i >= 2 && j >= 1 && liver(k, j - 1, i - 2));
                let les = k >= 1 && a[[k - 1, j, i]] == 2;
                b[[k, j, i]] = if les { 2 } else { u8::from(l) };
            }
        }
    }
    out
}

#[test]
fn phantom_pair_matches_the_oracle() {
    let d = temp_dir("metrics-phantom-oracle");
    let ph = Phantom::parse("phantom:small").unwrap();
    let mut truth = Volume::zeros(ph.header(StreamType::Label));
    let VolumeData::Label(a) = &mut truth.data else {
        unreachable!()
    };
    for k in 0..ph.shape[0] {
        a.index_axis_mut(ndarray::Axis(0), k)
            .assign(&ph.label_slice(k));
    }
    let pred = perturb(&truth);
    let (pp, tp) = (d.join("pred.nii.gz"), d.join("truth.nii.gz"));
    write(&pred, &pp);
    write(&truth, &tp);
    let j = run_eval_graph(&d, &pp, &tp, &[]);
    assert!(j["lesion"]["dice"].as_f64().unwrap() > 0.0, "{j}");
    assert_matches_oracle("phantom:small", &j, &tp, &pp);
}

#[test]
fn real_ircadb_pairs_match_the_oracle() {
    for name in ["ircadb01_small_label.nii.gz", "ircadb17_small_label.nii.gz"] {
        let Some(path) = data_file(name) else { return };
        let d = temp_dir(&format!("metrics-real-{}", &name[..8]));
        let truth = read_any(&path, Some(StreamType::Label), None).unwrap();
        let pred = perturb(&truth);
        let (pp, tp) = (d.join("pred.nii.gz"), d.join("truth.nii.gz"));
        write(&pred, &pp);
        write(&truth, &tp);
        let j = run_eval_graph(&d, &pp, &tp, &[]);
        assert!(j["liver"]["dice"].as_f64().unwrap() > 0.5);
        assert!(
            j["lesion"]["detection"]["truth_lesions"].as_u64().unwrap() >= 2,
            "{}",
            j["lesion"]["detection"]
        );
        assert_matches_oracle(name, &j, &tp, &pp);
    }
}
