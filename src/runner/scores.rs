//! Scoring a case (a predicted against a ground-truth label file, class by class), and the
//! scores as its status.json keeps them: one entry per class, `to_json`'s object for it.

use serde_json::{json, Value};
use std::path::Path;
use voxflow_metrics::{ClassMetrics, Detection, Metric, TruthLesion, Undefined, DETECTION_RULE};
use voxflow_nodes::eval::metrics::{
    check_detection, evaluate, parse_classes, to_json, ClassResult, ClassSpec, DEFAULT_CLASSES,
};
use voxflow_nodes::io::read_volume::read_any;
use voxflow_runtime::stream::StreamType;

/// Reads a predicted and a ground-truth label file and compares them class by class.
pub fn score_files(
    pred_path: &Path,
    truth_path: &Path,
    classes: &[ClassSpec],
    detect: &[String],
) -> Result<Vec<ClassResult>, String> {
    let (pred, truth) = std::thread::scope(|sc| {
        let p = sc.spawn(|| read_any(pred_path, Some(StreamType::Label), None));
        let t = read_any(truth_path, Some(StreamType::Label), None);
        (p.join().expect("reader thread"), t)
    });
    let (pred, truth) = (pred?, truth?);
    evaluate(&pred, &truth, classes, detect)
}

/// The classes of `--class` (default liver and lesion) and those of `--detect` (default
/// lesion, if it is a class).
pub fn class_specs(
    classes: &[String],
    detect: &[String],
) -> Result<(Vec<ClassSpec>, Vec<String>), String> {
    let specs: Vec<String> = if classes.is_empty() {
        DEFAULT_CLASSES.iter().map(|s| s.to_string()).collect()
    } else {
        classes.to_vec()
    };
    let classes = parse_classes(&specs)?;
    let detect = if detect.is_empty() {
        classes
            .iter()
            .filter(|c| c.name == "lesion")
            .map(|c| c.name.clone())
            .collect()
    } else {
        detect.to_vec()
    };
    check_detection(&classes, &detect).map_err(|e| format!("--detect: {e}"))?;
    Ok((classes, detect))
}

/// The classes' results as status.json's `metrics`.
pub fn to_status(r: &[ClassResult]) -> Value {
    json!(r
        .iter()
        .map(|c| json!({ "class": c.name, "metrics": to_json(std::slice::from_ref(c))[&c.name] }))
        .collect::<Vec<_>>())
}

/// status.json's `metrics` back to the classes' results.
pub fn from_status(v: &Value) -> Result<Vec<ClassResult>, String> {
    v.as_array()
        .ok_or("`metrics` is not a list")?
        .iter()
        .map(class_result)
        .collect()
}

fn metric(v: &Value, name: &str) -> Result<Metric, String> {
    match &v[name] {
        Value::Null => match v[format!("{name}_note")].as_str() {
            Some("pred empty") => Ok(Err(Undefined::PredEmpty)),
            Some("truth empty") => Ok(Err(Undefined::TruthEmpty)),
            Some("both empty") => Ok(Err(Undefined::BothEmpty)),
            other => Err(format!("`{name}` is null with note {other:?}")),
        },
        x => x
            .as_f64()
            .map(Ok)
            .ok_or_else(|| format!("`{name}` is not a number")),
    }
}

fn count(v: &Value, name: &str) -> Result<u64, String> {
    v[name]
        .as_u64()
        .ok_or_else(|| format!("`{name}` is not a count"))
}

/// The inverse of `to_json` of one class, as status.json stores it (`to_status`).
pub fn class_result(v: &Value) -> Result<ClassResult, String> {
    let name = v["class"].as_str().ok_or("no `class`")?.to_string();
    let m = &v["metrics"];
    let metrics = ClassMetrics {
        pred_voxels: count(m, "pred_voxels")?,
        truth_voxels: count(m, "truth_voxels")?,
        pred_surface_voxels: count(m, "pred_surface_voxels")?,
        truth_surface_voxels: count(m, "truth_surface_voxels")?,
        dice: metric(m, "dice")?,
        voe: metric(m, "voe")?,
        rvd: metric(m, "rvd")?,
        asd_mm: metric(m, "asd_mm")?,
        msd_mm: metric(m, "msd_mm")?,
        hd95_mm: metric(m, "hd95_mm")?,
    };
    let detection = match &m["detection"] {
        Value::Null => None,
        d => {
            let n = |k: &str| count(d, k).map(|x| x as usize);
            let lesions = d["lesions"]
                .as_array()
                .ok_or("`detection` has no `lesions`")?
                .iter()
                .map(|l| {
                    Ok(TruthLesion {
                        label: count(l, "label")? as u32,
                        voxels: count(l, "voxels")?,
                        volume_mm3: l["volume_mm3"].as_f64().ok_or("no `volume_mm3`")?,
                        overlap_voxels: count(l, "overlap_voxels")?,
                        detected: l["detected"].as_bool().ok_or("no `detected`")?,
                    })
                })
                .collect::<Result<_, String>>()?;
            Some(Detection {
                true_positive: n("true_positive")?,
                false_positive: n("false_positive")?,
                missed: n("missed")?,
                truth_lesions: n("truth_lesions")?,
                pred_lesions: n("pred_lesions")?,
                lesions,
                rule: DETECTION_RULE,
                pred_voxels: d["pred_voxels"]
                    .as_array()
                    .ok_or("`detection` has no `pred_voxels`")?
                    .iter()
                    .map(|v| v.as_u64().ok_or("a `pred_voxels` entry is not a count"))
                    .collect::<Result<_, _>>()?,
                touching: d["touching"]
                    .as_array()
                    .ok_or("`detection` has no `touching`")?
                    .iter()
                    .map(|v| match v.as_array().map(|a| a.as_slice()) {
                        Some([p, t]) => match (p.as_u64(), t.as_u64()) {
                            (Some(p), Some(t)) => Ok((p as u32, t as u32)),
                            _ => Err("a `touching` entry is not two labels"),
                        },
                        _ => Err("a `touching` entry is not two labels"),
                    })
                    .collect::<Result<_, _>>()?,
                voxel_mm3: d["voxel_mm3"]
                    .as_f64()
                    .ok_or("`detection` has no `voxel_mm3`")?,
            })
        }
    };
    Ok(ClassResult {
        name,
        metrics,
        detection,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;
    use voxflow_nodes::eval::metrics::{evaluate, parse_classes};
    use voxflow_runtime::stream::{StreamType, VolumeData};
    use voxflow_runtime::{Header, Volume};

    fn labels(f: impl Fn(usize, usize, usize) -> u8) -> Volume {
        let h = Header::new(StreamType::Label, [6, 10, 10], [2.0, 1.0, 1.0]);
        let mut v = Volume::zeros(h);
        let VolumeData::Label(a) = &mut v.data else {
            unreachable!()
        };
        *a = Array3::from_shape_fn((6, 10, 10), |(k, j, i)| f(k, j, i));
        v
    }

    #[test]
    fn class_results_survive_json() {
        let truth = labels(|k, j, i| u8::from((1..5).contains(&k) && j > 2) + u8::from(i == 4));
        let pred = labels(|k, j, _| u8::from((1..4).contains(&k) && j > 3));
        let classes = parse_classes(&["liver:>=1", "lesion:==2", "none:==7"]).unwrap();
        let r = evaluate(&pred, &truth, &classes, &["lesion".into()]).unwrap();
        for c in &r {
            let v = &to_status(std::slice::from_ref(c))[0];
            let back = class_result(v).unwrap();
            assert_eq!(back.name, c.name);
            assert_eq!(back.metrics, c.metrics);
            assert_eq!(back.detection, c.detection);
        }
    }
}
