//! Compares against values produced by the Python oracles on synthetic masks
//! (`fixtures/make_fixtures.py`, which says how to regenerate them).

use ndarray::Array3;
use serde_json::Value;
use voxflow_metrics::{binary_metrics, detection, surface_distances};
use voxflow_volume::{component_sizes, edt_squared, label_components, Connectivity};

fn load(name: &str) -> Value {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn shape(v: &Value) -> (usize, usize, usize) {
    let s: Vec<usize> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    (s[0], s[1], s[2])
}

fn spacing(v: &Value) -> [f64; 3] {
    let s: Vec<f64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    [s[0], s[1], s[2]]
}

/// Hex of `np.packbits(mask.ravel(), bitorder="little")`.
fn mask(hex: &Value, shape: (usize, usize, usize)) -> Array3<bool> {
    let hex = hex.as_str().unwrap();
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let n = shape.0 * shape.1 * shape.2;
    let bits: Vec<bool> = (0..n).map(|b| bytes[b / 8] >> (b % 8) & 1 == 1).collect();
    Array3::from_shape_vec(shape, bits).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1e-12) || (a - b).abs() <= 1e-12
}

#[test]
fn metrics_match_reference_and_medpy() {
    let f = load("metrics_cases.json");
    let cases = f["cases"].as_array().unwrap();
    assert!(cases.len() >= 11);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let sh = shape(&c["shape"]);
        let (p, t) = (mask(&c["pred"], sh), mask(&c["truth"], sh));
        let sp = spacing(&c["spacing"]);
        let got = binary_metrics(p.view(), t.view(), sp).to_json();
        match c.get("directed_mean_mm") {
            Some(d) => {
                let (a, b) = surface_distances(p.view(), t.view(), sp)
                    .unwrap()
                    .directed_means();
                assert!(
                    close(a, d[0].as_f64().unwrap()),
                    "{name} pred->truth {a} vs {}",
                    d[0]
                );
                assert!(
                    close(b, d[1].as_f64().unwrap()),
                    "{name} truth->pred {b} vs {}",
                    d[1]
                );
            }
            None => assert!(surface_distances(p.view(), t.view(), sp).is_err()),
        }
        let want = c["expected"].as_object().unwrap();
        let got = got.as_object().unwrap();
        assert_eq!(
            got.keys().collect::<Vec<_>>().len(),
            want.len(),
            "{name}: fields {got:?} vs {want:?}"
        );
        for (k, w) in want {
            let g = &got[k];
            match w {
                Value::Number(n) => {
                    let (g, w) = (g.as_f64().unwrap_or(f64::NAN), n.as_f64().unwrap());
                    assert!(close(g, w), "{name}.{k}: {g} vs reference {w}");
                }
                _ => assert_eq!(g, w, "{name}.{k}"),
            }
        }
    }
}

#[test]
fn labels_match_scipy() {
    let f = load("components.json");
    let l = &f["labels"];
    let sh = shape(&l["shape"]);
    let m = mask(&l["mask"], sh);
    for (conn, nkey, lkey) in [
        (Connectivity::Six, "n6", "labels6"),
        (Connectivity::TwentySix, "n26", "labels26"),
    ] {
        let (lab, n) = label_components(m.view(), conn);
        assert_eq!(n as u64, l[nkey].as_u64().unwrap());
        let want: Vec<u32> = l[lkey]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(lab.iter().copied().collect::<Vec<_>>(), want, "{conn:?}");
        assert_eq!(
            component_sizes(lab.view(), n).iter().sum::<u64>(),
            m.iter().filter(|&&b| b).count() as u64
        );
    }
}

#[test]
fn edt_matches_scipy() {
    let f = load("components.json");
    let e = &f["edt"];
    let sh = shape(&e["shape"]);
    let feat = mask(&e["features"], sh);
    let d2 = edt_squared(feat.view(), spacing(&e["spacing"]));
    let want = e["distance"].as_array().unwrap();
    assert_eq!(want.len(), d2.len());
    for (g, w) in d2.iter().zip(want) {
        let w = w.as_f64().unwrap();
        assert!(
            (g.sqrt() - w).abs() <= 1e-9 * w.max(1.0),
            "{} vs {w}",
            g.sqrt()
        );
    }
}

#[test]
fn detection_matches_scipy_counts() {
    let f = load("components.json");
    let d = &f["detection"];
    let sh = shape(&d["shape"]);
    let (t, p) = (mask(&d["truth"], sh), mask(&d["pred"], sh));
    let sp = spacing(&d["spacing"]);
    let r = detection(p.view(), t.view(), sp);
    assert_eq!(r.true_positive as u64, d["true_positive"].as_u64().unwrap());
    assert_eq!(r.missed as u64, d["missed"].as_u64().unwrap());
    assert_eq!(
        r.false_positive as u64,
        d["false_positive"].as_u64().unwrap()
    );
    assert_eq!(r.truth_lesions as u64, d["truth_lesions"].as_u64().unwrap());
    assert_eq!(r.pred_lesions as u64, d["pred_lesions"].as_u64().unwrap());
    let vox: Vec<u64> = r.lesions.iter().map(|l| l.voxels).collect();
    let ovl: Vec<u64> = r.lesions.iter().map(|l| l.overlap_voxels).collect();
    let as_u64 = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(vox, as_u64(&d["lesion_voxels"]));
    assert_eq!(ovl, as_u64(&d["lesion_overlap"]));
    assert!((r.lesions[0].volume_mm3 - vox[0] as f64 * sp[0] * sp[1] * sp[2]).abs() < 1e-9);
}
