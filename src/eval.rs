//! `voxflow eval`: a segmentation graph (or existing predictions) over a manifest of cases,
//! metrics per case, a per-case CSV and a Markdown summary (mean ± std, as the paper's Table 1).

use crate::cases::{read_manifest, Case};
use crate::runner::scores::{class_specs, from_status, score_files};
use crate::runner::status::State;
use crate::runner::{absolute, threads_per_case, CaseArgs, OutputRule, Runner, Spec};
use clap::Args;
use std::path::{Path, PathBuf};
use voxflow_nodes::eval::metrics::{
    csv_cells, to_json, ClassResult, ClassSpec, Detection, SizedDetection, CSV_COLUMNS,
    METRIC_NAMES, SIZED_PRED_MIN_MM3, SIZED_TRUTH_MIN_MM3,
};
use voxflow_runtime::output::write_atomic;
use voxflow_runtime::Registry;

#[derive(Args)]
pub struct EvalArgs {
    /// Segmentation graph (YAML); leave out with --predictions.
    pub(crate) graph: Option<PathBuf>,
    /// CSV with a header line: `id`, the truth column, and graph param names
    /// (e.g. `id,input,truth`); with --predictions `id,pred,truth`. Relative paths in it
    /// (and in --set) resolve against the manifest's folder.
    #[arg(long, value_name = "CSV")]
    manifest: PathBuf,
    /// Output folder: metrics.csv, summary.md, cases/ID.json (the scores), and with a graph
    /// pred/ID.nii.gz (the predictions) and runs/ID/ (each case's status.json, report.json and
    /// the run.log of a failed case: a later eval skips the cases done with the same versions).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Evaluate existing predictions (manifest column `pred`) instead of running a graph.
    #[arg(long, conflicts_with = "graph")]
    predictions: bool,
    /// Graph param that receives the prediction file (a label NIfTI the graph writes).
    #[arg(long, default_value = "output", value_name = "NAME")]
    pred_param: String,
    #[command(flatten)]
    case: CaseArgs,
    /// Cases run at a time (with a graph).
    #[arg(short = 'j', long = "jobs", default_value_t = 1, value_name = "N")]
    jobs: usize,
    /// Threads each case's nodes may use (default: the cores divided by -j).
    #[arg(long)]
    threads: Option<usize>,
    /// Run cases that failed before again (with a graph; they are skipped otherwise, unless
    /// their graph or inputs changed).
    #[arg(long)]
    retry_failed: bool,
}

/// Header of the per-case metrics CSV.
pub(crate) fn csv_header() -> String {
    format!("id,class,status,{}\n", CSV_COLUMNS.join(","))
}

/// The metrics CSV rows of one case: one per class, or one `failed` row with the message.
pub(crate) fn csv_rows(id: &str, r: Result<&[ClassResult], &str>) -> Vec<String> {
    match r {
        Ok(r) => r
            .iter()
            .map(|c| format!("{id},{},ok,{}", c.name, csv_cells(c).join(",")))
            .collect(),
        Err(msg) => {
            let mut cells = vec![String::new(); CSV_COLUMNS.len()];
            *cells.last_mut().expect("note column") = voxflow_nodes::csv::quote(msg);
            vec![format!("{id},,failed,{}", cells.join(","))]
        }
    }
}

/// Mean and population standard deviation (ddof = 0).
pub(crate) fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n).sqrt(),
    )
}

fn summary(
    a: &EvalArgs,
    classes: &[ClassSpec],
    done: &[(String, Vec<ClassResult>)],
    failed: &[(String, String)],
) -> String {
    let total = done.len() + failed.len();
    let source = match &a.graph {
        Some(g) => format!("graph `{}`", g.display()),
        None => "existing predictions".to_string(),
    };
    let mut s = format!(
        "# Evaluation\n\nManifest `{}`, {source}: {} of {total} cases evaluated, {} failed.\n\n\
         Mean ± standard deviation (population, ddof = 0) over the cases where the metric is defined \
         (n); distances in mm.\n",
        a.manifest.display(),
        done.len(),
        failed.len()
    );
    let names: Vec<String> = classes.iter().map(|c| c.name.clone()).collect();
    s.push_str(&metrics_tables(&names, done));
    if !failed.is_empty() {
        s.push_str("\n## Failed cases\n\n| case | error |\n| --- | --- |\n");
        for (id, e) in failed {
            s.push_str(&format!(
                "| {id} | {} |\n",
                e.replace('|', "\\|").replace('\n', " ")
            ));
        }
    }
    s
}

/// One Markdown table per class (mean ± std, n, undefined per metric) and its detection counts.
pub(crate) fn metrics_tables(classes: &[String], done: &[(String, Vec<ClassResult>)]) -> String {
    let mut s = String::new();
    for (ci, name) in classes.iter().enumerate() {
        s.push_str(&format!(
            "\n## {name}\n\n| metric | mean ± std | n | undefined |\n| --- | --- | --- | --- |\n"
        ));
        for m in METRIC_NAMES {
            let vals: Vec<f64> = done
                .iter()
                .filter_map(|(_, r)| r[ci].metric(m).ok())
                .collect();
            let undef = done.len() - vals.len();
            let cell = if vals.is_empty() {
                "-".to_string()
            } else {
                let (mean, sd) = mean_std(&vals);
                format!("{mean:.4} ± {sd:.4}")
            };
            s.push_str(&format!("| {m} | {cell} | {} | {undef} |\n", vals.len()));
        }
        let dets: Vec<_> = done
            .iter()
            .filter_map(|(_, r)| r[ci].detection.as_ref())
            .collect();
        if !dets.is_empty() {
            let sum = |f: fn(&Detection) -> usize| dets.iter().map(|d| f(d)).sum::<usize>();
            s.push_str(&format!(
                "\nDetection over {} cases: {} of {} truth lesions detected, {} missed, {} false positive \
                 components.\n",
                dets.len(),
                sum(|d| d.true_positive),
                sum(|d| d.truth_lesions),
                sum(|d| d.missed),
                sum(|d| d.false_positive)
            ));
            let sized: Vec<_> = dets
                .iter()
                .map(|d| d.sized(SIZED_TRUTH_MIN_MM3, SIZED_PRED_MIN_MM3))
                .collect();
            let total = |f: fn(&SizedDetection) -> usize| sized.iter().map(f).sum::<usize>();
            s.push_str(&format!(
                "Lesions of >= 1 mL: {} of {} found by predicted components of >= 0.5 mL; {} of {} \
                 such components touch a truth lesion.\n",
                total(|z| z.found),
                total(|z| z.truth_lesions),
                total(|z| z.true_components),
                total(|z| z.pred_components)
            ));
        }
    }
    s
}

/// Scores existing predictions (manifest column `pred`), case by case, in this process.
fn score_predictions(
    a: &EvalArgs,
    cases: &[Case],
    classes: &[ClassSpec],
    detect: &[String],
) -> Vec<Result<Vec<ClassResult>, String>> {
    let base = a.manifest.parent().unwrap_or(Path::new(""));
    cases
        .iter()
        .map(|case| {
            let cell = |col: &str| {
                case.values
                    .iter()
                    .find(|(c, v)| c == col && !v.is_empty())
                    .map(|(_, v)| base.join(v))
                    .ok_or_else(|| format!("no value in column `{col}`"))
            };
            let r = cell("pred")
                .and_then(|pred| score_files(&pred, &cell(&a.case.truth_column)?, classes, detect));
            r.map_err(|e| {
                let msg = format!("manifest line {}: {e}", case.line);
                eprintln!("case {} failed: {msg}", case.id);
                msg
            })
        })
        .collect()
}

/// Runs the graph over the cases with the case runner (as `voxflow batch`), predictions to
/// DIR/pred/ID.nii.gz, and takes each case's scores from its status.
fn run_graph(
    a: &EvalArgs,
    graph: &Path,
    cols: &[String],
    cases: &[Case],
    reg: &Registry,
    quiet: bool,
    plugins: &[PathBuf],
) -> Result<Vec<Result<Vec<ClassResult>, String>>, String> {
    let out = absolute(&a.out)?;
    let threads = threads_per_case(a.jobs, a.threads)?;
    let runner = Runner::new(
        reg,
        Spec {
            command: "eval",
            graph: &absolute(graph)?,
            manifest: &absolute(&a.manifest)?,
            columns: cols,
            cases_dir: out.join("runs"),
            output_param: &a.pred_param,
            output: OutputRule::Folder(out.join("pred")),
            case: &a.case,
            threads,
            shard: None,
            plugins,
        },
    )?;
    let all: Vec<&Case> = cases.iter().collect();
    runner.run(&all, cases.len(), a.jobs, a.retry_failed, quiet)?;
    Ok(cases
        .iter()
        .map(|case| match runner.status(&case.id) {
            Some(st) if st.state == State::Done => st
                .metrics
                .as_ref()
                .ok_or_else(|| format!("manifest line {}: the case was not scored", case.line))
                .and_then(|m| from_status(m).map_err(|e| format!("{}: metrics: {e}", case.id))),
            Some(st) => Err(st.error.unwrap_or_default()),
            None => Err(format!(
                "manifest line {}: the case has no status (another process was running it)",
                case.line
            )),
        })
        .collect())
}

pub fn run(a: EvalArgs, reg: &Registry, quiet: bool, plugins: &[PathBuf]) -> Result<(), String> {
    let (classes, detect) = class_specs(&a.case.classes, &a.case.detect)?;
    let (cols, cases) = read_manifest(&a.manifest)?;
    let need = |c: &str| -> Result<(), String> {
        if cols.iter().any(|x| x == c) {
            Ok(())
        } else {
            Err(format!(
                "manifest {}: no `{c}` column (has {})",
                a.manifest.display(),
                cols.join(", ")
            ))
        }
    };
    need(&a.case.truth_column)?;
    let results = match (&a.graph, a.predictions) {
        (None, false) => {
            return Err("give a segmentation graph, or --predictions to read existing ones".into())
        }
        (None, true) => {
            need("pred")?;
            score_predictions(&a, &cases, &classes, &detect)
        }
        (Some(g), _) => run_graph(&a, g, &cols, &cases, reg, quiet, plugins)?,
    };
    let mut done = Vec::new();
    let mut failed = Vec::new();
    let mut rows = Vec::new();
    for (case, r) in cases.iter().zip(results) {
        let json_path = a.out.join("cases").join(format!("{}.json", case.id));
        match r {
            Ok(r) => {
                let text = serde_json::to_string_pretty(&to_json(&r)).expect("json") + "\n";
                write_atomic(&json_path, &text)?;
                rows.extend(csv_rows(&case.id, Ok(&r)));
                done.push((case.id.clone(), r));
            }
            Err(msg) => {
                let _ = std::fs::remove_file(&json_path);
                rows.extend(csv_rows(&case.id, Err(&msg)));
                failed.push((case.id.clone(), msg));
            }
        }
    }
    let mut csv = csv_header();
    for r in rows {
        csv.push_str(&r);
        csv.push('\n');
    }
    write_atomic(&a.out.join("metrics.csv"), &csv)?;
    let md = summary(&a, &classes, &done, &failed);
    write_atomic(&a.out.join("summary.md"), &md)?;
    if !quiet {
        for (ci, c) in classes.iter().enumerate() {
            let dice: Vec<f64> = done
                .iter()
                .filter_map(|(_, r)| r[ci].metrics.dice.ok())
                .collect();
            if !dice.is_empty() {
                let (m, sd) = mean_std(&dice);
                eprintln!(
                    "{}: Dice {m:.4} ± {sd:.4} over {} cases",
                    c.name,
                    dice.len()
                );
            }
        }
        eprintln!(
            "wrote {} and {}",
            a.out.join("metrics.csv").display(),
            a.out.join("summary.md").display()
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} cases failed (listed in {})",
            failed.len(),
            cases.len(),
            a.out.join("summary.md").display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats() {
        let (m, s) = mean_std(&[1.0, 3.0]);
        assert_eq!((m, s), (2.0, 1.0));
    }
}
