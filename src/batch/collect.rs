//! `voxflow batch --collect DIR` (also the end of an unsharded run): merges the cases'
//! `status.json` into `summary.csv`, `metrics.csv` and `summary.md`.

use crate::cases::Case;
use crate::eval::{csv_header, csv_rows, mean_std, metrics_tables};
use crate::runner::scores::class_result;
use crate::runner::status::{write_atomic, State, Status};
use serde_json::{json, Value};
use std::path::Path;
use voxflow_nodes::csv::quote as csv_quote;

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
