//! `voxflow batch --collect DIR` (also the end of an unsharded run): merges the cases'
//! `status.json` into `summary.csv`, `metrics.csv` and `summary.md`.

use super::status::{write_atomic, State, Status};
use crate::cases::Case;
use crate::eval::{csv_header, csv_rows, mean_std, metrics_tables};
use serde_json::{json, Value};
use std::path::Path;
use voxflow_metrics::{ClassMetrics, Detection, Metric, TruthLesion, Undefined, DETECTION_RULE};
use voxflow_nodes::csv::quote as csv_quote;
use voxflow_nodes::eval::metrics::ClassResult;

pub const BATCH_FILE: &str = "batch.json";

/// Records the graph, manifest and case list in DIR/batch.json for `--collect`; `classes`
/// when the cases are scored.
pub fn write_batch_info(
    out: &Path,
    graph: &Path,
    manifest: &Path,
    cases: &[Case],
    classes: Option<&[String]>,
) -> Result<(), String> {
    let v = json!({
        "graph": graph,
        "manifest": manifest,
        "cases": cases.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        "classes": classes,
    });
    let text = serde_json::to_string_pretty(&v).map_err(|e| e.to_string())? + "\n";
    write_atomic(&out.join(BATCH_FILE), text.as_bytes())
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

/// The inverse of `to_json` of one class, as status.json stores it.
fn class_result(v: &Value) -> Result<ClassResult, String> {
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

fn num(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.3}")).unwrap_or_default()
}

/// Reads every case's status under `dir` and writes the summaries; an error when cases
/// failed or have not run.
pub fn run(dir: &Path, quiet: bool) -> Result<(), String> {
    let info_path = dir.join(BATCH_FILE);
    let info: Value = std::fs::read_to_string(&info_path)
        .map_err(|e| {
            format!(
                "cannot read {}: {e} (is {} the --out folder of a voxflow batch?)",
                info_path.display(),
                dir.display()
            )
        })
        .and_then(|t| {
            serde_json::from_str(&t).map_err(|e| format!("{}: {e}", info_path.display()))
        })?;
    let ids: Vec<&str> = info["cases"]
        .as_array()
        .ok_or_else(|| format!("{}: no `cases` list", info_path.display()))?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let classes: Option<Vec<String>> = info["classes"].as_array().map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    });

    let mut summary = String::from(
        "id,state,error,started_unix,total_s,graph_s,score_s,peak_rss_mib,threads,host,slurm_job,output\n",
    );
    let mut metrics_csv = csv_header();
    let mut scored = Vec::new();
    let mut failed = Vec::new();
    let mut missing = Vec::new();
    let mut done = Vec::new();
    for id in &ids {
        let Some(st) = Status::read(&dir.join(id)) else {
            summary.push_str(&format!("{id},not run,,,,,,,,,,\n"));
            missing.push(id.to_string());
            continue;
        };
        let t = &st.timings;
        summary.push_str(&format!(
            "{id},{},{},{:.3},{:.3},{},{},{},{},{},{},{}\n",
            match st.state {
                State::Done => "done",
                State::Failed => "failed",
            },
            csv_quote(&st.error.as_deref().unwrap_or_default().replace('\n', " ")),
            t.started_unix,
            t.total_s,
            num(t.graph_s),
            num(t.score_s),
            num(st.peak_rss_bytes.map(|b| b as f64 / (1024.0 * 1024.0))),
            st.threads,
            csv_quote(&st.host),
            st.slurm_job.as_deref().unwrap_or_default(),
            csv_quote(&st.fingerprint.output.to_string_lossy()),
        ));
        match (st.state, &st.metrics) {
            (State::Done, Some(Value::Array(m))) => {
                let r = m
                    .iter()
                    .map(class_result)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{}/status.json: metrics: {e}", dir.join(id).display()))?;
                metrics_csv.extend(csv_rows(id, Ok(&r)).into_iter().map(|r| r + "\n"));
                scored.push((id.to_string(), r));
            }
            (State::Failed, _) => {
                let e = st.error.clone().unwrap_or_default();
                metrics_csv.extend(csv_rows(id, Err(&e)).into_iter().map(|r| r + "\n"));
                failed.push((id.to_string(), e));
            }
            _ => {}
        }
        if st.state == State::Done {
            done.push(st);
        }
    }
    write_atomic(&dir.join("summary.csv"), summary.as_bytes())?;
    if classes.is_some() {
        write_atomic(&dir.join("metrics.csv"), metrics_csv.as_bytes())?;
    }

    let mut md = format!(
        "# Batch\n\nGraph `{}`, manifest `{}`: {} cases, {} done, {} failed, {} not run.\n",
        info["graph"].as_str().unwrap_or_default(),
        info["manifest"].as_str().unwrap_or_default(),
        ids.len(),
        done.len(),
        failed.len(),
        missing.len()
    );
    if !done.is_empty() {
        let total: Vec<f64> = done.iter().map(|s| s.timings.total_s).collect();
        let (m, sd) = mean_std(&total);
        let rss: Vec<f64> = done
            .iter()
            .filter_map(|s| s.peak_rss_bytes)
            .map(|b| b as f64 / (1024.0 * 1024.0))
            .collect();
        let first = done
            .iter()
            .map(|s| s.timings.started_unix)
            .fold(f64::INFINITY, f64::min);
        let last = done
            .iter()
            .map(|s| s.timings.started_unix + s.timings.total_s)
            .fold(0.0, f64::max);
        let span = (last - first).max(1e-3);
        md.push_str(&format!(
            "\nTime per done case: {m:.1} ± {sd:.1} s (mean ± std). From the first start to the last \
             end of the done cases: {span:.0} s, {:.1} cases per hour (the throughput when they ran \
             in one go).\n",
            done.len() as f64 * 3600.0 / span
        ));
        if !rss.is_empty() {
            let (rm, _) = mean_std(&rss);
            let max = rss.iter().cloned().fold(0.0, f64::max);
            md.push_str(&format!(
                "Peak memory per case: {rm:.0} MiB mean, {max:.0} MiB max.\n"
            ));
        }
    }
    if let Some(classes) = &classes {
        md.push_str(&format!(
            "\nMetrics of the {} scored cases: mean ± standard deviation (population, ddof = 0) over \
             the cases where the metric is defined (n); distances in mm.\n",
            scored.len()
        ));
        md.push_str(&metrics_tables(classes, &scored));
    }
    if !failed.is_empty() {
        md.push_str("\n## Failed cases\n\n| case | error |\n| --- | --- |\n");
        for (id, e) in &failed {
            md.push_str(&format!(
                "| {id} | {} |\n",
                e.replace('|', "\\|").replace('\n', " ")
            ));
        }
    }
    if !missing.is_empty() {
        md.push_str(&format!("\n## Not run\n\n{}\n", missing.join(", ")));
    }
    write_atomic(&dir.join("summary.md"), md.as_bytes())?;
    if !quiet {
        eprintln!(
            "{} cases: {} done, {} failed, {} not run; wrote {}",
            ids.len(),
            done.len(),
            failed.len(),
            missing.len(),
            dir.join("summary.csv").display()
        );
    }
    if failed.is_empty() && missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} cases failed and {} have not run (see {})",
            failed.len(),
            ids.len(),
            missing.len(),
            dir.join("summary.md").display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;
    use voxflow_nodes::eval::metrics::{evaluate, parse_classes, to_json};
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
            let v =
                json!({ "class": c.name, "metrics": to_json(std::slice::from_ref(c))[&c.name] });
            let back = class_result(&v).unwrap();
            assert_eq!(back.name, c.name);
            assert_eq!(back.metrics, c.metrics);
            assert_eq!(back.detection, c.detection);
        }
    }
}
