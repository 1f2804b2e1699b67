//! `voxflow eval`: a segmentation graph (or existing predictions) over a manifest of cases,
//! metrics per case, a per-case CSV and a Markdown summary (mean ± std, as the paper's Table 1).

use crate::cases::{read_manifest, Case};
use clap::Args;
use serde_json::Value;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use voxflow_nodes::eval::metrics::{
    check_detection, csv_cells, evaluate, parse_classes, to_json, ClassResult, ClassSpec,
    Detection, SizedDetection, CSV_COLUMNS, DEFAULT_CLASSES, METRIC_NAMES, SIZED_PRED_MIN_MM3,
    SIZED_TRUTH_MIN_MM3,
};
use voxflow_nodes::io::read_volume::read_any;
use voxflow_runtime::output::write_atomic;
use voxflow_runtime::stream::StreamType;
use voxflow_runtime::{check, execute, CheckOptions, GraphDoc, Registry, RunOptions, RunStats};

#[derive(Args)]
pub struct EvalArgs {
    /// Segmentation graph (YAML); leave out with --predictions.
    pub(crate) graph: Option<PathBuf>,
    /// CSV with a header line: `id`, the truth column, and graph param names
    /// (e.g. `id,input,truth`); with --predictions `id,pred,truth`. Relative paths in it
    /// (and in --set) resolve against the manifest's folder.
    #[arg(long, value_name = "CSV")]
    manifest: PathBuf,
    /// Output folder: metrics.csv, summary.md, cases/ID.json, pred/ID.nii.gz.
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
    /// Threads a node may use (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// The per-case options `eval` and `batch` share: scoring and graph params.
#[derive(clap::Args, Debug, Clone)]
pub struct CaseArgs {
    /// Manifest column holding the ground-truth label file; when present, each case is scored
    /// (also passed to the graph when it declares a param of that name).
    #[arg(long, default_value = "truth", value_name = "NAME")]
    pub truth_column: String,
    /// A class as NAME:RULE (repeatable; default liver:>=1 and lesion:==2).
    #[arg(long = "class", value_name = "NAME:RULE")]
    pub classes: Vec<String>,
    /// Class with per-lesion detection counts (repeatable; default lesion, if it is a class).
    #[arg(long = "detect", value_name = "NAME")]
    pub detect: Vec<String>,
    /// Override a graph param for every case: --set name=value (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
}

struct Setup<'a> {
    doc: Option<GraphDoc>,
    reg: &'a Registry,
    base: PathBuf,
    sets: Vec<(String, Value)>,
    classes: Vec<ClassSpec>,
    detect: Vec<String>,
    run: RunOptions,
}

/// Runs one case; returns its metrics.
fn run_case(a: &EvalArgs, s: &Setup, case: &Case) -> Result<Vec<ClassResult>, String> {
    let get = |col: &str| {
        case.values
            .iter()
            .find(|(c, _)| c == col)
            .map(|(_, v)| v.as_str())
    };
    let resolve = |v: &str| s.base.join(v);
    let truth_path = resolve(
        get(&a.case.truth_column)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("no value in column `{}`", a.case.truth_column))?,
    );
    let pred_path = match &s.doc {
        None => resolve(
            get("pred")
                .filter(|v| !v.is_empty())
                .ok_or("no value in column `pred`")?,
        ),
        Some(doc) => {
            let pred = std::path::absolute(a.out.join("pred").join(format!("{}.nii.gz", case.id)))
                .map_err(|e| e.to_string())?;
            // A prediction left from an earlier run must not be evaluated.
            let _ = std::fs::remove_file(&pred);
            let mut set = s.sets.clone();
            for (c, v) in &case.values {
                if c != &a.case.truth_column || doc.params.iter().any(|p| &p.name == c) {
                    set.push((c.clone(), voxflow_runtime::validate::parse_set_value(v)));
                }
            }
            set.push((
                a.pred_param.clone(),
                Value::String(pred.display().to_string()),
            ));
            let opts = CheckOptions {
                set,
                cwd: s.base.clone(),
                require_values: true,
            };
            let plan = check(doc, s.reg, &opts).map_err(|d| d.to_string())?;
            let stats = RunStats::new(&plan);
            execute(&plan, s.reg, &s.run, &stats).map_err(|e| e.to_string())?;
            if !pred.exists() {
                return Err(format!(
                    "the graph ran but wrote no prediction at {} (is param `{}` the path of a write_volume node?)",
                    pred.display(),
                    a.pred_param
                ));
            }
            pred
        }
    };
    score_files(&pred_path, &truth_path, &s.classes, &s.detect)
}

/// Reads a predicted and a ground-truth label file and compares them class by class.
pub(crate) fn score_files(
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
pub(crate) fn class_specs(
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

pub fn run(a: EvalArgs, reg: &Registry, quiet: bool) -> Result<(), String> {
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
    let doc = match (&a.graph, a.predictions) {
        (None, false) => {
            return Err("give a segmentation graph, or --predictions to read existing ones".into())
        }
        (None, true) => {
            need("pred")?;
            None
        }
        (Some(g), _) => {
            let doc = GraphDoc::load(g).map_err(|d| d.to_string())?;
            if !doc.params.iter().any(|p| p.name == a.pred_param) {
                let names: Vec<&str> = doc.params.iter().map(|p| p.name.as_str()).collect();
                return Err(format!(
                    "graph {} has no param `{}` to receive the prediction file (params: {}); choose one with --pred-param",
                    g.display(),
                    a.pred_param,
                    names.join(", ")
                ));
            }
            Some(doc)
        }
    };
    let dir = a.manifest.parent().filter(|p| !p.as_os_str().is_empty());
    let base = std::path::absolute(dir.unwrap_or(Path::new("."))).map_err(|e| e.to_string())?;
    let mut run = RunOptions::default();
    if let Some(t) = a.threads {
        run.threads = t.max(1);
    }
    let setup = Setup {
        doc,
        reg,
        base,
        sets: crate::parse_sets(&a.case.set)?,
        classes,
        detect,
        run,
    };

    let bar = if quiet || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(cases.len() as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} cases {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_prefix("eval");
    let mut done = Vec::new();
    let mut failed = Vec::new();
    let mut rows = Vec::new();
    for case in &cases {
        bar.set_message(case.id.clone());
        match run_case(&a, &setup, case) {
            Ok(r) => {
                let text = serde_json::to_string_pretty(&to_json(&r)).expect("json") + "\n";
                write_atomic(
                    &a.out.join("cases").join(format!("{}.json", case.id)),
                    &text,
                )?;
                rows.extend(csv_rows(&case.id, Ok(&r)));
                done.push((case.id.clone(), r));
            }
            Err(e) => {
                let _ = std::fs::remove_file(a.out.join("cases").join(format!("{}.json", case.id)));
                let msg = format!("manifest line {}: {e}", case.line);
                bar.suspend(|| eprintln!("case {} failed: {msg}", case.id));
                rows.extend(csv_rows(&case.id, Err(&msg)));
                failed.push((case.id.clone(), msg));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut csv = csv_header();
    for r in rows {
        csv.push_str(&r);
        csv.push('\n');
    }
    write_atomic(&a.out.join("metrics.csv"), &csv)?;
    let md = summary(&a, &setup.classes, &done, &failed);
    write_atomic(&a.out.join("summary.md"), &md)?;
    if !quiet {
        for (ci, c) in setup.classes.iter().enumerate() {
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
