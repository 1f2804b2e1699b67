//! `voxflow batch`: bad cases, resume, --retry-failed, changed inputs, kill safety, shards,
//! --collect, and the CT graph on real scans with truth.

mod common;

use common::{data_file, root, temp_dir, voxflow, write_graph};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};
use voxflow_nodes::io::nifti_io::write_nifti;
use voxflow_nodes::io::read_volume::read_any;
use voxflow_runtime::stream::{StreamType, VolumeData};
use voxflow_runtime::{Header, Volume};

/// Copies a label volume: reads `input` as labels and writes it to `output`.
const COPY: &str = "graph: copy\nparams:\n  input: { default: \"phantom:small\" }\n  \
    output: { default: \"out/labels.nii.gz\" }\nnodes:\n  \
    read: { kind: read_volume, path: $input, as: label }\n  \
    save: { kind: write_volume, in: read, path: $output }\n";

fn write_labels(path: &Path, shift: usize) {
    let shape = [6, 10, 12];
    let mut v = Volume::zeros(Header::new(StreamType::Label, shape, [2.0, 1.0, 1.0]));
    let VolumeData::Label(a) = &mut v.data else {
        unreachable!()
    };
    for ((k, j, i), x) in a.indexed_iter_mut() {
        let inside =
            (1..5).contains(&k) && (2..8).contains(&j) && (2 + shift..8 + shift).contains(&i);
        let lesion = inside && (2..4).contains(&k) && (3..5).contains(&j) && i == 4 + shift;
        *x = if lesion { 2 } else { u8::from(inside) };
    }
    write_nifti(path, &v.header, &v.data).unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn batch(graph: &Path, manifest: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "batch",
        s(graph),
        "--manifest",
        s(manifest),
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    voxflow(&args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn status(out: &Path, id: &str) -> Value {
    let p = out.join(id).join("status.json");
    let t = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&t).unwrap()
}

fn state(out: &Path, id: &str) -> String {
    status(out, id)["state"].as_str().unwrap().to_string()
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

/// Modification times of every case's status.json.
fn stamps(out: &Path, ids: &[&str]) -> BTreeMap<String, SystemTime> {
    ids.iter()
        .map(|id| (id.to_string(), mtime(&out.join(id).join("status.json"))))
        .collect()
}

/// The cases whose status.json was rewritten between two snapshots.
fn rerun(a: &BTreeMap<String, SystemTime>, b: &BTreeMap<String, SystemTime>) -> Vec<String> {
    a.iter()
        .filter(|(id, t)| b[*id] != **t)
        .map(|(id, _)| id.clone())
        .collect()
}

fn sha256(p: &Path) -> String {
    Sha256::digest(std::fs::read(p).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn dice(st: &Value, class: &str) -> f64 {
    st["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == class)
        .unwrap()["metrics"]["dice"]
        .as_f64()
        .unwrap()
}

/// Temporary files left anywhere under `dir`.
fn temps(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(temps(&p));
        } else if e.file_name().to_string_lossy().starts_with(".voxflow-tmp-") {
            out.push(p);
        }
    }
    out
}

#[test]
fn bad_cases_resume_retry_and_changes() {
    let d = temp_dir("batch-resume");
    write_labels(&d.join("a.nii.gz"), 0);
    write_labels(&d.join("b.nii.gz"), 1);
    std::fs::write(d.join("wrong.nii.gz"), b"this is not a NIfTI file").unwrap();
    let g = write_graph(&d, "copy.yaml", COPY);
    let m = d.join("cases.csv");
    std::fs::write(
        &m,
        "id,input,truth\na,a.nii.gz,a.nii.gz\nb,b.nii.gz,a.nii.gz\nc,phantom:small,\n\
         missing,missing.nii.gz,a.nii.gz\nwrong,wrong.nii.gz,a.nii.gz\n",
    )
    .unwrap();
    let out = d.join("out");
    let ids = ["a", "b", "c", "missing", "wrong"];

    let o = batch(&g, &m, &out, &["-j", "2"]);
    let err = stderr(&o);
    assert!(!o.status.success(), "failed cases make the batch fail");
    assert!(
        err.contains("case missing failed: manifest line 5:"),
        "{err}"
    );
    assert!(err.contains("case wrong failed: manifest line 6:"), "{err}");
    assert!(err.contains("2 of 5 cases failed"), "{err}");
    for id in ["a", "b", "c"] {
        assert_eq!(state(&out, id), "done", "{id}");
    }
    let st = status(&out, "missing");
    assert_eq!(st["state"], "failed");
    assert!(
        st["error"].as_str().unwrap().contains("missing.nii.gz"),
        "{st}"
    );
    assert!(status(&out, "wrong")["error"]
        .as_str()
        .unwrap()
        .contains("wrong.nii.gz"));
    // Default output: DIR/ID/ and the file name of the graph's default `output`.
    let a = status(&out, "a");
    assert_eq!(a["output"], s(&out.join("a/labels.nii.gz")));
    assert!(out.join("a/labels.nii.gz").exists());
    assert_eq!(dice(&a, "liver"), 1.0);
    assert_eq!(dice(&a, "lesion"), 1.0);
    assert!(dice(&status(&out, "b"), "liver") < 0.9);
    assert!(
        status(&out, "c")["metrics"].is_null(),
        "no truth, no metrics"
    );
    // Versions: the graph file's hash and the input's.
    assert_eq!(a["graph"]["sha256"], sha256(&g));
    assert_eq!(
        a["inputs"][0]["file"]["sha256"],
        sha256(&d.join("a.nii.gz"))
    );
    assert_eq!(a["input_checksum"].as_str().unwrap().len(), 64);
    assert!(a["peak_rss_bytes"].as_u64().unwrap() > 1_000_000);
    assert!(a["timings"]["graph_s"].as_f64().unwrap() > 0.0);

    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let rows: Vec<Vec<&str>> = summary.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 6, "{summary}");
    let states: Vec<(&str, &str)> = rows[1..].iter().map(|r| (r[0], r[1])).collect();
    assert_eq!(
        states,
        [
            ("a", "done"),
            ("b", "done"),
            ("c", "done"),
            ("missing", "failed"),
            ("wrong", "failed")
        ]
    );
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let mrows: Vec<&str> = metrics.lines().collect();
    assert_eq!(mrows.len(), 1 + 2 + 2 + 1 + 1, "{metrics}");
    assert!(mrows[1].starts_with("a,liver,ok,1,"), "{metrics}");
    assert!(mrows[5].starts_with("missing,,failed,"), "{metrics}");
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("5 cases, 3 done, 2 failed, 0 not run"), "{md}");
    assert!(md.contains("Metrics of the 2 scored cases"), "{md}");
    assert!(md.contains("| dice | "), "{md}");
    assert!(temps(&out).is_empty(), "{:?}", temps(&out));

    // Resume: nothing changed, nothing runs (failed cases are not retried).
    let t0 = stamps(&out, &ids);
    let o = batch(&g, &m, &out, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("3 done before, 2 failed before"),
        "{}",
        stderr(&o)
    );
    let t1 = stamps(&out, &ids);
    assert!(rerun(&t0, &t1).is_empty());

    // A touched but unchanged input does not rerun; a changed one and a deleted output do.
    let f = std::fs::File::options()
        .write(true)
        .open(d.join("a.nii.gz"))
        .unwrap();
    f.set_modified(SystemTime::now()).unwrap();
    drop(f);
    write_labels(&d.join("b.nii.gz"), 0);
    std::fs::remove_file(out.join("c/labels.nii.gz")).unwrap();
    batch(&g, &m, &out, &[]);
    let t2 = stamps(&out, &ids);
    assert_eq!(rerun(&t1, &t2), ["b", "c"]);
    assert_eq!(dice(&status(&out, "b"), "liver"), 1.0);
    assert!(out.join("c/labels.nii.gz").exists());

    // --retry-failed runs the failed cases again, and only them.
    let o = batch(&g, &m, &out, &["--retry-failed"]);
    assert!(!o.status.success());
    let t3 = stamps(&out, &ids);
    assert_eq!(rerun(&t2, &t3), ["missing", "wrong"]);
    assert_eq!(state(&out, "missing"), "failed");

    // A failed case whose input appears runs again without --retry-failed.
    write_labels(&d.join("missing.nii.gz"), 0);
    let o = batch(&g, &m, &out, &[]);
    let t4 = stamps(&out, &ids);
    assert_eq!(rerun(&t3, &t4), ["missing"]);
    assert_eq!(state(&out, "missing"), "done");
    assert!(stderr(&o).contains("1 of 5 cases failed"), "{}", stderr(&o));

    // A changed graph reruns everything.
    std::fs::write(&g, format!("{COPY}# edited\n")).unwrap();
    batch(&g, &m, &out, &[]);
    let t5 = stamps(&out, &ids);
    assert_eq!(rerun(&t4, &t5), ids);
    std::fs::remove_dir_all(&d).unwrap();
}

/// A model named in an included part (not a graph param) and the part itself are versions of
/// the case: changing either reruns it.
#[test]
fn models_and_parts_of_included_graphs_are_fingerprinted() {
    let d = temp_dir("batch-part-model");
    let models = root().join("nodes/kernels/onnx/tests/models");
    std::fs::copy(models.join("tiny_fcn.onnx"), d.join("m.onnx")).unwrap();
    let part = "graph: part\ninputs:\n  img: {}\nparams:\n  output: {}\nnodes:\n  \
        w: { kind: hu_window, in: img, min: -100, max: 400 }\n  \
        eq: { kind: equalize, in: w, bins: 256 }\n  \
        f: { kind: fcn, in: eq, model: m.onnx, device: cpu }\n  \
        lab: { kind: argmax, in: f }\n  \
        save: { kind: write_volume, in: lab, path: $output }\n";
    write_graph(&d, "part.yaml", part);
    let g = write_graph(
        &d,
        "seg.yaml",
        "graph: seg\nparams:\n  input: { default: \"phantom:small\" }\n  \
         output: { default: \"out/seg.nii.gz\" }\nnodes:\n  \
         ct: { kind: read_volume, path: $input }\n  \
         net: { kind: graph, file: part.yaml, img: ct, output: $output }\n",
    );
    let m = d.join("cases.csv");
    std::fs::write(&m, "id,input\nc,phantom:small\n").unwrap();
    let out = d.join("out");
    let o = batch(&g, &m, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let st = status(&out, "c");
    let model = d.join("m.onnx").canonicalize().unwrap();
    assert_eq!(st["models"][0]["path"], s(&model), "{st}");
    assert_eq!(st["models"][0]["sha256"], sha256(&model));
    // Unchanged: skipped.
    let before = stamps(&out, &["c"]);
    batch(&g, &m, &out, &[]);
    assert!(rerun(&before, &stamps(&out, &["c"])).is_empty());
    // Another model under the same name: rerun.
    std::fs::copy(models.join("tiny_fcn_pad.onnx"), &model).unwrap();
    let before = stamps(&out, &["c"]);
    let o = batch(&g, &m, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(rerun(&before, &stamps(&out, &["c"])), ["c"]);
    // The included part changed: rerun.
    write_graph(&d, "part.yaml", &format!("# edited\n{part}"));
    let before = stamps(&out, &["c"]);
    batch(&g, &m, &out, &[]);
    assert_eq!(rerun(&before, &stamps(&out, &["c"])), ["c"]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn shards_partition_the_cases_and_collect_merges_them() {
    let d = temp_dir("batch-shards");
    let g = write_graph(&d, "copy.yaml", COPY);
    let m = d.join("cases.csv");
    let ids: Vec<String> = (0..7).map(|i| format!("c{i}")).collect();
    let mut text = "id,input\n".to_string();
    for id in &ids {
        text.push_str(&format!("{id},phantom:small\n"));
    }
    std::fs::write(&m, text).unwrap();
    let out = d.join("out");
    let o = batch(&g, &m, &out, &["--shard", "3/3"]);
    assert!(
        stderr(&o).contains("expected I/N with 0 <= I < N"),
        "{}",
        stderr(&o)
    );

    let done = |out: &Path| -> Vec<String> {
        ids.iter()
            .filter(|id| out.join(id).join("status.json").exists())
            .cloned()
            .collect()
    };
    let o = batch(&g, &m, &out, &["--shard", "0/3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(done(&out), ["c0", "c3", "c6"]);
    assert!(
        !out.join("summary.csv").exists(),
        "a shard leaves merging to --collect"
    );
    let o = batch(&g, &m, &out, &["--shard", "1/3", "-j", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(done(&out), ["c0", "c1", "c3", "c4", "c6"]);

    // Collect before the last shard: the missing cases are listed and make it fail.
    let o = voxflow(&["batch", "--collect", s(&out)]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("0 of 7 cases failed and 2 have not run"),
        "{}",
        stderr(&o)
    );
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(summary.contains("\nc2,not run,"), "{summary}");

    let o = batch(&g, &m, &out, &["--shard", "2/3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(status(&out, id)["shard"], format!("{}/3", i % 3));
    }
    let o = voxflow(&["batch", "--collect", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(summary.matches(",done,").count(), 7, "{summary}");
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("7 cases, 7 done, 0 failed, 0 not run"), "{md}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// Pids of running processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&c).contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

/// Starts a batch, waits until it has finished a case and runs another, then sends `signal`.
fn kill_mid_run(g: &Path, m: &Path, out: &Path, ids: &[String], signal: &str) {
    let done_before = ids
        .iter()
        .filter(|id| out.join(id).join("status.json").exists())
        .count();
    let mut child = Command::new(env!("CARGO_BIN_EXE_voxflow"))
        .args([
            "-q",
            "batch",
            s(g),
            "--manifest",
            s(m),
            "--out",
            s(out),
            "-j",
            "2",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let report = format!("{}/", out.display());
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the batch ended before it could be killed"
        );
        let done = ids
            .iter()
            .filter(|id| out.join(id).join("status.json").exists())
            .count();
        // A running case is a `voxflow run` child writing its report under DIR.
        let running = processes_with(&report).into_iter().any(|p| p != child.id());
        if done > done_before && running && done < ids.len() - 1 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(300), "no case finished");
        std::thread::sleep(Duration::from_millis(20));
    }
    let k = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(k.success());
    child.wait().unwrap();
    // The running cases die with the batch.
    let t = Instant::now();
    while !processes_with(&report).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "case processes outlived the batch"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every output file present is whole, and every done case has its output.
fn check_outputs(out: &Path, ids: &[String]) -> Vec<String> {
    let mut done = Vec::new();
    for id in ids {
        let f = out.join(id).join("ct_liver_lesion.nii.gz");
        if f.exists() {
            read_any(&f, Some(StreamType::Label), None)
                .unwrap_or_else(|e| panic!("half-written {}: {e}", f.display()));
        }
        if out.join(id).join("status.json").exists() {
            assert_eq!(state(out, id), "done");
            assert!(f.exists());
            done.push(id.clone());
        }
    }
    done
}

#[test]
fn killed_batch_resumes_without_losing_or_half_writing_cases() {
    let d = temp_dir("batch-kill");
    let g = root().join("graphs/ct_liver_lesion.yaml");
    let m = d.join("cases.csv");
    let ids: Vec<String> = (0..6).map(|i| format!("p{i}")).collect();
    let mut text = "id,input\n".to_string();
    for id in &ids {
        text.push_str(&format!("{id},phantom:small\n"));
    }
    std::fs::write(&m, text).unwrap();
    let out = d.join("out");

    kill_mid_run(&g, &m, &out, &ids, "-TERM");
    let after_term = check_outputs(&out, &ids);
    assert!(!after_term.is_empty() && after_term.len() < ids.len());
    let stamps_term = stamps(
        &out,
        &after_term.iter().map(String::as_str).collect::<Vec<_>>(),
    );

    kill_mid_run(&g, &m, &out, &ids, "-KILL");
    let after_kill = check_outputs(&out, &ids);
    assert!(after_kill.len() > after_term.len() && after_kill.len() < ids.len());

    let o = batch(&g, &m, &out, &["-j", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{} done before", after_kill.len())),
        "{err}"
    );
    assert_eq!(check_outputs(&out, &ids), ids);
    // Cases finished before the kills were not run again.
    let now = stamps(
        &out,
        &after_term.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(rerun(&stamps_term, &now).is_empty());
    assert!(temps(&out).is_empty(), "{:?}", temps(&out));
    // The models the graph references are recorded with their hashes.
    let st = status(&out, "p0");
    let models: Vec<(String, String)> = st["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["path"].as_str().unwrap().to_string(),
                m["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = ["ct_liver.onnx", "ct_lesion.onnx"]
        .iter()
        .map(|f| {
            let p = root().join("models").join(f).canonicalize().unwrap();
            (p.to_str().unwrap().to_string(), sha256(&p))
        })
        .collect();
    assert_eq!(models, want);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn ct_graph_on_real_scans_with_truth_and_bad_files() {
    let (Some(ct1), Some(lab1), Some(ct17), Some(lab17)) = (
        data_file("ircadb01_small_ct.nii.gz"),
        data_file("ircadb01_small_label.nii.gz"),
        data_file("ircadb17_small_ct.nii.gz"),
        data_file("ircadb17_small_label.nii.gz"),
    ) else {
        return;
    };
    let d = temp_dir("batch-ct");
    std::fs::write(d.join("broken.nii.gz"), [0x1f, 0x8b, 0x08, 0, 1, 2, 3]).unwrap();
    let m = d.join("cases.csv");
    std::fs::write(
        &m,
        format!(
            "id,input,truth\nircadb01,{},{}\nbroken,broken.nii.gz,{}\nircadb17,{},{}\nabsent,absent.nii.gz,{}\n",
            s(&ct1),
            s(&lab1),
            s(&lab1),
            s(&ct17),
            s(&lab17),
            s(&lab1)
        ),
    )
    .unwrap();
    let out = d.join("out");
    let g = root().join("graphs/ct_liver_lesion.yaml");
    let o = batch(&g, &m, &out, &["-j", "2"]);
    let err = stderr(&o);
    assert!(err.contains("2 of 4 cases failed"), "{err}");
    assert!(err.contains("case broken failed"), "{err}");
    assert!(err.contains("case absent failed"), "{err}");
    for id in ["ircadb01", "ircadb17"] {
        let st = status(&out, id);
        assert_eq!(st["state"], "done", "{st}");
        assert_eq!(st["threads"], 1, "2 cores shared by -j 2");
        let liver = dice(&st, "liver");
        assert!(liver > 0.8, "{id}: liver Dice {liver}");
        let seg = out.join(id).join("ct_liver_lesion.nii.gz");
        let seg = read_any(&seg, Some(StreamType::Label), None).unwrap();
        let ct = if id == "ircadb01" { &ct1 } else { &ct17 };
        let ct = read_any(ct, None, None).unwrap();
        assert_eq!(seg.header.shape, ct.header.shape);
    }
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("4 cases, 2 done, 2 failed"), "{md}");
    assert!(md.contains("## liver") && md.contains("## lesion"), "{md}");
    assert!(md.contains("Detection over 2 cases"), "{md}");
    // IRCADb 1 and 17 hold 6 + 2 lesions of >= 1 mL; the counts come back from each case's JSON.
    assert!(
        md.contains(" of 8 found by predicted components of >= 0.5 mL; "),
        "{md}"
    );
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(metrics.contains("\nircadb17,lesion,ok,"), "{metrics}");
    assert!(metrics.contains("\nbroken,,failed,"), "{metrics}");
    std::fs::remove_dir_all(&d).unwrap();
}
