//! `survival_features` and `risk` through graph runs: PyRadiomics values on a committed
//! synthetic fixture, real data against the kernel, edge cases, the risk model, the graph.

mod common;

use common::*;
use ndarray::Array3;
use serde_json::Value;
use std::path::{Path, PathBuf};
use voxflow_nodes::io::nifti_io::write_nifti;
use voxflow_nodes::io::read_volume::read_any;
use voxflow_radiomics::{feature_names, features, Settings};
use voxflow_runtime::stream::{StreamType, VolumeData};
use voxflow_runtime::{Header, Volume};
use voxflow_volume::{label_components, Connectivity};

/// Seeded synthetic volume + PyRadiomics 3.0.1 values of its regions
/// (`nodes/src/features/fixtures/gen_survival_fixture.py`).
fn fixture() -> Value {
    let p = root().join("nodes/src/features/fixtures/survival_fixture.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn header(
    ty: StreamType,
    shape: [usize; 3],
    spacing: [f64; 3],
    affine: Option<[[f64; 4]; 4]>,
) -> Header {
    let mut h = Header::new(ty, shape, spacing);
    if let Some(a) = affine {
        h.affine = a;
    }
    h
}

fn write_image(p: &Path, a: Array3<f32>, spacing: [f64; 3], affine: Option<[[f64; 4]; 4]>) {
    let (nk, nj, ni) = a.dim();
    let h = header(StreamType::Image, [nk, nj, ni], spacing, affine);
    write_nifti(p, &h, &VolumeData::Image(a)).unwrap();
}

fn write_label(p: &Path, a: Array3<u8>, spacing: [f64; 3], affine: Option<[[f64; 4]; 4]>) {
    let (nk, nj, ni) = a.dim();
    let h = header(StreamType::Label, [nk, nj, ni], spacing, affine);
    write_nifti(p, &h, &VolumeData::Label(a)).unwrap();
}

/// Writes the fixture's image and label into `dir`; returns the fixture.
fn write_fixture(dir: &Path) -> Value {
    let f = fixture();
    let sh: Vec<usize> = f["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let sp: Vec<f64> = f["spacing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mut aff = [[0.0; 4]; 4];
    for (r, row) in f["affine"].as_array().unwrap().iter().enumerate() {
        for (c, v) in row.as_array().unwrap().iter().enumerate() {
            aff[r][c] = v.as_f64().unwrap();
        }
    }
    let shape = (sh[0], sh[1], sh[2]);
    let img: Vec<f32> = f["image"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let lab: Vec<u8> = f["label"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    let spacing = [sp[0], sp[1], sp[2]];
    write_image(
        &dir.join("img.nii.gz"),
        Array3::from_shape_vec(shape, img).unwrap(),
        spacing,
        Some(aff),
    );
    write_label(
        &dir.join("lab.nii.gz"),
        Array3::from_shape_vec(shape, lab).unwrap(),
        spacing,
        Some(aff),
    );
    f
}

fn run_graph(dir: &Path, text: &str) -> std::process::Output {
    let g = write_graph(dir, "g.yaml", text);
    voxflow(&["-q", "run", g.to_str().unwrap()])
}

fn features_graph(regions: &str) -> String {
    format!(
        "graph: t\nnodes:\n  ct: {{ kind: read_volume, path: img.nii.gz }}\n  lab: {{ kind: read_volume, path: lab.nii.gz, as: label }}\n  \
         feats: {{ kind: survival_features, image: ct, label: lab, regions: {regions}, json: f.json, csv: f.csv }}\n"
    )
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

fn region<'a>(out: &'a Value, name: &str) -> &'a Value {
    out["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == name)
        .unwrap_or_else(|| panic!("no row {name} in {out}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 || (a - b).abs() <= 1e-4 * b.abs()
}

/// Checks the CSV against the JSON: same rows and columns, no NaN anywhere.
fn check_csv(csv: &str, json: &Value) {
    assert!(
        !csv.contains("NaN") && !csv.to_lowercase().contains("nan,"),
        "{csv}"
    );
    let lines: Vec<&str> = csv.lines().collect();
    let head: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(head.len(), 8 + 107 + 1);
    assert_eq!(head[..3], ["region", "id", "status"]);
    assert_eq!(
        head[8..115]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
        feature_names()
    );
    let rows = json["regions"].as_array().unwrap();
    assert_eq!(lines.len(), rows.len() + 1);
    for (line, r) in lines[1..].iter().zip(rows) {
        let cells: Vec<&str> = line.splitn(head.len(), ',').collect();
        assert_eq!(cells[0], r["region"].as_str().unwrap());
        for (n, c) in head.iter().zip(&cells).skip(8).take(107) {
            match r.get(*n).and_then(Value::as_f64) {
                // serde_json's default float parser may be one ulp off the shortest form.
                Some(v) => {
                    let x: f64 = c.parse().unwrap();
                    assert!((x - v).abs() <= 1e-15 * v.abs(), "{n}: csv {x}, json {v}");
                }
                None => assert_eq!(*c, "", "{n}"),
            }
        }
    }
}

#[test]
fn fixture_regions_match_pyradiomics() {
    let d = temp_dir("feat-fixture");
    let fx = write_fixture(&d);
    let o = run_graph(
        &d,
        &features_graph("[lesions, each_lesion, liver, liver_parenchyma]"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = read_json(&d.join("f.json"));
    check_csv(&std::fs::read_to_string(d.join("f.csv")).unwrap(), &out);
    let names: Vec<&str> = out["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["region"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "lesions",
            "lesion_1",
            "lesion_2",
            "lesion_3",
            "lesion_4",
            "liver",
            "liver_parenchyma"
        ]
    );
    let aff = &fx["affine"];
    let voxel_ml = 2.5 * 0.8 * 0.7 / 1000.0;
    let mut checked = 0;
    for (name, want) in fx["regions"].as_object().unwrap() {
        let got = region(&out, name);
        if let Some(err) = want.get("error") {
            // The single-voxel lesion: PyRadiomics refuses it, we give a row without features.
            assert!(err.as_str().unwrap().contains("single voxel"));
            assert_eq!(got["status"], "undefined", "{got}");
            assert!(
                got["note"].as_str().unwrap().contains("single voxel"),
                "{got}"
            );
            assert!(got.get("original_firstorder_Mean").is_none());
            assert_eq!(got["voxels"], 1);
            continue;
        }
        assert_eq!(got["status"], "ok", "{name}");
        let wn = want["names"].as_array().unwrap();
        let wv = want["values"].as_array().unwrap();
        assert_eq!(wn.len(), 107);
        for (n, v) in wn.iter().zip(wv) {
            let (n, v) = (n.as_str().unwrap(), v.as_f64().unwrap());
            let g = got[n]
                .as_f64()
                .unwrap_or_else(|| panic!("{name}: {n} missing"));
            assert!(close(g, v), "{name} {n}: voxflow {g}, PyRadiomics {v}");
            checked += 1;
        }
        let n = want["voxels"].as_f64().unwrap();
        assert_eq!(got["voxels"].as_f64().unwrap(), n);
        // NIfTI stores spacing as float32, hence 1e-6.
        let ml = got["volume_ml"].as_f64().unwrap();
        assert!((ml - n * voxel_ml).abs() < 1e-6 * ml, "{name} {ml}");
        assert!(
            (ml - got["original_shape_VoxelVolume"].as_f64().unwrap() / 1000.0).abs() < 1e-12 * ml
        );
        // Centroid: PyRadiomics' centre-of-mass index (x, y, z) through the affine, and its
        // LPS world coordinates (x and y negated with respect to our RAS).
        let idx: Vec<f64> = want["center_of_mass_index"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let lps: Vec<f64> = want["center_of_mass_lps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let c: Vec<f64> = got["centroid_mm"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for r in 0..3 {
            let a = |c: usize| aff[r][c].as_f64().unwrap();
            let w = a(0) * idx[0] + a(1) * idx[1] + a(2) * idx[2] + a(3);
            // The NIfTI affine is float32: 1e-4 mm.
            assert!((c[r] - w).abs() < 1e-4, "{name} centroid {c:?} vs {w}");
            let sign = if r < 2 { -1.0 } else { 1.0 };
            assert!(
                (c[r] - sign * lps[r]).abs() < 1e-4,
                "{name} centroid {c:?} vs LPS {lps:?}"
            );
        }
    }
    assert_eq!(checked, 6 * 107);
    // lesion_3 touches the last column (i = 23) of the volume.
    let l3 = region(&out, "lesion_3");
    assert_eq!(l3["id"], 3);
    // Liver includes the lesions; parenchyma does not.
    let n = |r: &str| region(&out, r)["voxels"].as_u64().unwrap();
    assert_eq!(n("liver"), n("liver_parenchyma") + n("lesions"));
    assert_eq!(
        n("lesions"),
        (1..=4).map(|i| n(&format!("lesion_{i}"))).sum::<u64>()
    );
}

#[test]
fn empty_label_gives_no_region_rows() {
    let d = temp_dir("feat-empty");
    let img = Array3::from_shape_fn((6, 10, 12), |(k, j, i)| (k * 7 + j * 3 + i) as f32);
    write_image(&d.join("img.nii.gz"), img, [2.0, 1.0, 1.0], None);
    write_label(
        &d.join("lab.nii.gz"),
        Array3::zeros((6, 10, 12)),
        [2.0, 1.0, 1.0],
        None,
    );
    let o = run_graph(&d, &features_graph("[lesions, each_lesion, liver]"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = read_json(&d.join("f.json"));
    let csv = std::fs::read_to_string(d.join("f.csv")).unwrap();
    check_csv(&csv, &out);
    for name in ["lesions", "each_lesion", "liver"] {
        let r = region(&out, name);
        assert_eq!(r["status"], "no region", "{r}");
        assert!(r["note"].as_str().unwrap().starts_with("no region:"), "{r}");
        assert_eq!(r["voxels"], 0);
        assert!(r["centroid_mm"].is_null());
    }
    assert!(
        csv.lines()
            .nth(2)
            .unwrap()
            .starts_with("each_lesion,,no region,0,0,,,,"),
        "{csv}"
    );
}

/// Scattered voxels: no two are 26-neighbours, so GLCM is undefined (PyRadiomics: NaN).
#[test]
fn scattered_lesion_voxels_give_null_glcm_not_nan() {
    let d = temp_dir("feat-sparse");
    let img = Array3::from_shape_fn((6, 10, 12), |(k, j, i)| {
        ((k * 31 + j * 17 + i * 7) % 90) as f32
    });
    let mut lab = Array3::<u8>::zeros((6, 10, 12));
    for (k, j, i) in [(1, 1, 1), (1, 5, 5), (4, 2, 9), (4, 8, 3)] {
        lab[[k, j, i]] = 2;
    }
    write_image(&d.join("img.nii.gz"), img, [2.0, 0.9, 0.8], None);
    write_label(&d.join("lab.nii.gz"), lab, [2.0, 0.9, 0.8], None);
    let o = run_graph(&d, &features_graph("[lesions, each_lesion]"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = read_json(&d.join("f.json"));
    check_csv(&std::fs::read_to_string(d.join("f.csv")).unwrap(), &out);
    let r = region(&out, "lesions");
    assert_eq!(r["status"], "partial");
    assert!(r["original_glcm_Contrast"].is_null());
    assert!(r["original_firstorder_Mean"].is_f64());
    assert!(r["note"].as_str().unwrap().contains("GLCM"));
    for l in 1..=4 {
        assert_eq!(region(&out, &format!("lesion_{l}"))["status"], "undefined");
    }
}

#[test]
fn geometry_mismatch_is_an_error_and_writes_nothing() {
    let d = temp_dir("feat-geom");
    write_image(
        &d.join("img.nii.gz"),
        Array3::zeros((6, 10, 12)),
        [2.0, 1.0, 1.0],
        None,
    );
    let mut lab = Array3::<u8>::zeros((6, 10, 13));
    lab[[2, 2, 2]] = 2;
    write_label(&d.join("lab.nii.gz"), lab, [2.0, 1.0, 1.0], None);
    let o = run_graph(&d, &features_graph("[lesions]"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("`feats`") && err.contains("12x10x6") && err.contains("13x10x6"),
        "{err}"
    );
    assert!(!d.join("f.json").exists() && !d.join("f.csv").exists());
}

fn risk_graph(model: &str) -> String {
    format!(
        "graph: t\nnodes:\n  ct: {{ kind: read_volume, path: img.nii.gz }}\n  lab: {{ kind: read_volume, path: lab.nii.gz, as: label }}\n  \
         feats: {{ kind: survival_features, image: ct, label: lab, regions: [lesions, each_lesion], json: f.json }}\n  \
         risk: {{ kind: risk, image: ct, label: lab, model: {model}, region: lesions, json: r.json, csv: r.csv }}\n"
    )
}

#[test]
fn risk_applies_a_hand_written_model() {
    let d = temp_dir("feat-risk");
    write_fixture(&d);
    std::fs::write(
        d.join("model.yaml"),
        "name: hand-written test model\ncoefficients:\n  original_firstorder_Mean: 0.02\n  \
         original_shape_Sphericity: -1.5\n  volume_ml: 3\n  original_glcm_Contrast: 0.1\nintercept: 0.25\nthreshold: 0.5\n",
    )
    .unwrap();
    let o = run_graph(&d, &risk_graph("model.yaml"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f = read_json(&d.join("f.json"));
    let l = region(&f, "lesions");
    let x = |n: &str| l[n].as_f64().unwrap();
    let want = 0.25 + 0.02 * x("original_firstorder_Mean") - 1.5 * x("original_shape_Sphericity")
        + 3.0 * x("volume_ml")
        + 0.1 * x("original_glcm_Contrast");
    let r = read_json(&d.join("r.json"));
    let res = &r["results"][0];
    assert_eq!(res["region"], "lesions");
    let score = res["score"].as_f64().unwrap();
    assert!(
        (score - want).abs() < 1e-9 * want.abs().max(1.0),
        "{score} vs {want}"
    );
    assert_eq!(res["risk"], if want >= 0.5 { "high" } else { "low" });
    let csv = std::fs::read_to_string(d.join("r.csv")).unwrap();
    assert!(
        csv.starts_with("region,id,score,threshold,risk,note\nlesions,,"),
        "{csv}"
    );

    // The threshold moved above the score flips the decision.
    std::fs::write(
        d.join("model2.json"),
        format!(r#"{{"features": ["original_firstorder_Mean"], "coefficients": [1.0], "intercept": 0, "threshold": {}}}"#, x("original_firstorder_Mean") + 1.0),
    )
    .unwrap();
    let o = run_graph(&d, &risk_graph("model2.json"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read_json(&d.join("r.json"))["results"][0]["risk"], "low");
}

#[test]
fn risk_model_with_a_missing_feature_is_a_clear_error() {
    let d = temp_dir("feat-risk-missing");
    write_fixture(&d);
    std::fs::write(
        d.join("model.json"),
        r#"{"coefficients": {"original_firstorder_Mean": 1, "original_glcm_Contrst": 2}, "intercept": 0, "threshold": 0}"#,
    )
    .unwrap();
    let o = run_graph(&d, &risk_graph("model.json"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("`original_glcm_Contrst`")
            && err.contains("did you mean `original_glcm_Contrast`")
            && err.contains("model.json"),
        "{err}"
    );
    assert!(
        !d.join("r.json").exists() && !d.join("f.json").exists(),
        "nothing is written when a node fails"
    );
}

fn kernel(img: &Volume, mask: &Array3<bool>) -> Vec<(String, f64)> {
    features(
        img.image().unwrap().view(),
        mask.view(),
        img.header.spacing,
        &Settings::default(),
    )
    .unwrap()
}

fn same(a: f64, b: &Value) -> bool {
    match b.as_f64() {
        Some(b) => a == b || (a - b).abs() <= 1e-12 * a.abs(),
        None => a.is_nan() && b.is_null(),
    }
}

/// Real CT (ircadb01, 128x128x129): the node's rows equal the kernel called directly on
/// whole-volume masks.
#[test]
fn real_ct_node_equals_kernel() {
    let (Some(ct), Some(lab)) = (
        data_file("ircadb01_small_ct.nii.gz"),
        data_file("ircadb01_small_label.nii.gz"),
    ) else {
        return;
    };
    let d = temp_dir("feat-real");
    let g = format!(
        "graph: t\nnodes:\n  ct: {{ kind: read_volume, path: {} }}\n  lab: {{ kind: read_volume, path: {}, as: label }}\n  \
         feats: {{ kind: survival_features, image: ct, label: lab, json: f.json, csv: f.csv }}\n",
        ct.display(),
        lab.display()
    );
    let o = run_graph(&d, &g);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = read_json(&d.join("f.json"));
    check_csv(&std::fs::read_to_string(d.join("f.csv")).unwrap(), &out);
    let img = read_any(&ct, Some(StreamType::Image), None).unwrap();
    let labv = read_any(&lab, Some(StreamType::Label), None).unwrap();
    let l = labv.label().unwrap();
    let lesion = l.mapv(|v| v == 2);
    let (comps, n) = label_components(lesion.view(), Connectivity::TwentySix);
    assert!(n >= 1);
    let mut masks: Vec<(String, Array3<bool>)> = vec![
        ("lesions".into(), lesion.clone()),
        ("liver".into(), l.mapv(|v| v >= 1)),
    ];
    for c in 1..=n as u32 {
        masks.push((format!("lesion_{c}"), comps.mapv(|v| v == c)));
    }
    let rows = out["regions"].as_array().unwrap();
    assert_eq!(rows.len(), n + 2);
    for (name, m) in &masks {
        let got = region(&out, name);
        let voxels = m.iter().filter(|&&b| b).count();
        assert_eq!(got["voxels"].as_u64().unwrap() as usize, voxels, "{name}");
        if voxels == 1 {
            assert_eq!(got["status"], "undefined");
            continue;
        }
        let want = features(
            img.image().unwrap().view(),
            m.view(),
            img.header.spacing,
            &Settings::default(),
        );
        let Ok(want) = want else {
            assert_eq!(got["status"], "undefined", "{name}");
            continue;
        };
        for (f, v) in &want {
            assert!(same(*v, &got[f]), "{name} {f}: kernel {v}, node {}", got[f]);
        }
    }
}

#[test]
fn survival_graph_checks() {
    let g = root().join("graphs/ct_liver_lesion_survival.yaml");
    voxflow_ok(&["-q", "check", g.to_str().unwrap()]);
}

/// The shipped graph end to end with the tiny test models: the features describe the
/// segmentation the same run wrote.
#[test]
fn survival_graph_runs_with_test_models() {
    let Some(ct) = data_file("ircadb01_small_ct.nii.gz") else {
        return;
    };
    let d = temp_dir("feat-graph");
    let models = root().join("nodes/kernels/onnx/tests/models");
    let sets: Vec<String> = vec![
        format!("input={}", ct.display()),
        format!("output={}", d.join("seg.nii.gz").display()),
        format!("features_csv={}", d.join("f.csv").display()),
        format!("features_json={}", d.join("f.json").display()),
        format!("liver_model={}", models.join("tiny_fcn.onnx").display()),
        format!(
            "lesion_model={}",
            models.join("identity_lesion_level.onnx").display()
        ),
        "device=cpu".into(),
    ];
    let g: PathBuf = root().join("graphs/ct_liver_lesion_survival.yaml");
    let mut args = vec!["-q", "run", g.to_str().unwrap()];
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    voxflow_ok(&args);
    let seg = read_any(&d.join("seg.nii.gz"), Some(StreamType::Label), None).unwrap();
    let out = read_json(&d.join("f.json"));
    check_csv(&std::fs::read_to_string(d.join("f.csv")).unwrap(), &out);
    let l = seg.label().unwrap();
    let liver = region(&out, "liver");
    assert_eq!(
        liver["voxels"].as_u64().unwrap() as usize,
        l.iter().filter(|&&v| v >= 1).count()
    );
    let lesions = region(&out, "lesions");
    assert_eq!(
        lesions["voxels"].as_u64().unwrap() as usize,
        l.iter().filter(|&&v| v == 2).count()
    );
    if liver["status"] == "ok" {
        let img = read_any(&ct, Some(StreamType::Image), None).unwrap();
        let want = kernel(&img, &l.mapv(|v| v >= 1));
        for (f, v) in &want {
            assert!(
                same(*v, &liver[f]),
                "liver {f}: kernel {v}, node {}",
                liver[f]
            );
        }
    }
}
