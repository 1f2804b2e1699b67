//! Faults: SIGINT/SIGTERM during a run, temporaries of killed runs, an output that is an input,
//! a graph with more nodes than the system gives threads, a full disk, and the messages of a
//! model folder and a missing graph file. Every case ends in rc 0 with the right result or in a
//! clear error, with no panic text and nothing left at the output path.

mod common;

use common::{root, temp_dir, voxflow, voxflow_ok, write_graph};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use voxflow_runtime::ParamType;

/// Copies a label volume: reads `input` as labels and writes it to `output`.
const COPY: &str = "graph: copy\nparams:\n  input: { default: \"phantom:small\" }\n  \
    output: { default: \"out/labels.nii.gz\" }\nnodes:\n  \
    read: { kind: read_volume, path: $input, as: label }\n  \
    save: { kind: write_volume, in: read, path: $output }\n";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A clear error: rc 1, an `error:` line, no panic, no Debug dump of an I/O error.
fn assert_clear_error(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("error: "), "{err}");
    for bad in ["panicked", "RUST_BACKTRACE", "Os {", "Kind(", "Io("] {
        assert!(!err.contains(bad), "`{bad}` in:\n{err}");
    }
    err
}

/// Every file and folder under `dir`, sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(tree(&p));
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Temporary files anywhere under `dir`.
fn temps(dir: &Path) -> Vec<PathBuf> {
    tree(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".voxflow-tmp-"))
        })
        .collect()
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// A pid that no process has: a child that has ended.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    pid
}

/// The phantom CT graph (`graphs/ct_liver_lesion.yaml`, FCNs and CRF on the 512x512x100 phantom)
/// plus a node `early` that writes the phantom image to `early` as soon as it is read, so
/// that a temporary file exists while the FCNs still run. Outputs go to `dir/res/`, a folder
/// the run has to create.
fn phantom_run(dir: &Path, early: &Path) -> Child {
    // The copy lives in `dir`: its include must name the shipped part by its full path.
    let part = root().join("graphs/parts/report.yaml");
    let text = std::fs::read_to_string(root().join("graphs/ct_liver_lesion.yaml"))
        .unwrap()
        .replace(
            "file: parts/report.yaml",
            &format!("file: {}", part.display()),
        );
    assert!(text.contains(&part.display().to_string()), "{text}");
    let g = write_graph(
        dir,
        "ct.yaml",
        &format!(
            "{}\n  early: {{ kind: write_volume, in: ct, path: \"{}\" }}\n",
            text.trim_end(),
            early.display()
        ),
    );
    let models = root().join("models");
    Command::new(env!("CARGO_BIN_EXE_voxflow"))
        .args(["-q", "run", s(&g), "--set"])
        .arg(format!("output={}", dir.join("res/ct.nii.gz").display()))
        .arg("--set")
        .arg(format!(
            "liver_model={}",
            models.join("ct_liver.onnx").display()
        ))
        .arg("--set")
        .arg(format!(
            "lesion_model={}",
            models.join("ct_lesion.onnx").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `child` has a temporary file under `dir` (the `early` node is writing or has
/// written), while it still runs.
fn wait_for_temp(child: &mut Child, dir: &Path) {
    let t = Instant::now();
    while temps(dir).is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it wrote a temporary file"
        );
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no temporary file after 300 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn kill(child: &Child, signal: &str) {
    let k = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(k.success());
}

#[test]
fn sigint_and_sigterm_stop_the_run_and_leave_nothing() {
    for (signal, name, code) in [("-INT", "SIGINT", 130), ("-TERM", "SIGTERM", 143)] {
        let d = temp_dir(&format!("faults-signal{signal}"));
        let early = d.join("res/early.nii.gz");
        let mut child = phantom_run(&d, &early);
        wait_for_temp(&mut child, &d);
        let t = Instant::now();
        kill(&child, signal);
        let o = child.wait_with_output().unwrap();
        // A hang detector, not a speed test: the nodes check for cancellation between slices.
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "{signal}: no prompt stop"
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{signal}: {err}");
        assert!(err.contains(&format!("interrupted by {name}")), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        // Neither outputs, nor temporaries, nor the folder the run made.
        assert_eq!(tree(&d), [d.join("ct.yaml")], "{signal}");
    }
}

#[test]
fn temporaries_of_a_killed_run_are_removed_by_the_next_run() {
    let d = temp_dir("faults-kill9");
    let early = d.join("res/early.nii.gz");
    let mut child = phantom_run(&d, &early);
    wait_for_temp(&mut child, &d);
    kill(&child, "-KILL");
    child.wait().unwrap();
    let left = temps(&d);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!early.exists());

    // Stale temporaries of the same output in every naming voxflow used, and ones to keep.
    let (h, dead, me) = (host(), dead_pid(), std::process::id());
    let res = d.join("res");
    let stale = [
        format!(".voxflow-tmp-{h}-{dead}-early.nii.gz"),
        format!(".voxflow-tmp-{h}-{dead}-ThreadId(3)-early.nii.gz"),
        format!(".voxflow-tmp-{dead}-early.nii.gz"),
    ];
    let keep = [
        // A live process (this test) may still be writing it.
        format!(".voxflow-tmp-{h}-{me}-early.nii.gz"),
        // Another host sharing the folder: its process cannot be looked up from here.
        format!(".voxflow-tmp-otherhost-{dead}-early.nii.gz"),
        // Another output.
        format!(".voxflow-tmp-{h}-{dead}-other.nii.gz"),
    ];
    for f in stale.iter().chain(&keep) {
        std::fs::write(res.join(f), b"partial").unwrap();
    }
    let g = write_graph(&d, "copy.yaml", COPY);
    voxflow_ok(&[
        "-q",
        "run",
        s(&g),
        "--set",
        &format!("output={}", s(&early)),
    ]);
    assert!(early.exists());
    let mut want: Vec<PathBuf> = keep.iter().map(|f| res.join(f)).collect();
    want.sort();
    assert_eq!(temps(&d), want);
}

#[test]
fn an_output_that_is_an_input_is_refused_before_the_run() {
    let d = temp_dir("faults-same");
    let input = d.join("in.nii.gz");
    voxflow_ok(&[
        "-q",
        "run",
        s(&write_graph(&d, "copy.yaml", COPY)),
        "--set",
        &format!("output={}", s(&input)),
    ]);
    let bytes = std::fs::read(&input).unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::os::unix::fs::symlink(&input, d.join("link.nii.gz")).unwrap();
    let g = d.join("copy.yaml");
    for (inp, out) in [
        (input.clone(), input.clone()),
        (input.clone(), d.join("sub/../in.nii.gz")),
        (input.clone(), d.join("./in.nii.gz")),
        (input.clone(), d.join("link.nii.gz")),
        (d.join("link.nii.gz"), input.clone()),
    ] {
        let o = voxflow(&[
            "-q",
            "run",
            s(&g),
            "--set",
            &format!("input={}", s(&inp)),
            "--set",
            &format!("output={}", s(&out)),
        ]);
        let err = assert_clear_error(&o);
        assert!(err.contains("is the same file as the input"), "{err}");
        assert!(
            err.contains("node `save`") && err.contains("node `read`"),
            "{err}"
        );
        assert!(err.contains(s(&inp)) && err.contains(s(&out)), "{err}");
        assert_eq!(std::fs::read(&input).unwrap(), bytes, "{inp:?} -> {out:?}");
        assert!(temps(&d).is_empty());
    }
    // A relative spelling from another working folder.
    let o = Command::new(env!("CARGO_BIN_EXE_voxflow"))
        .current_dir(d.join("sub"))
        .args(["-q", "run", s(&g), "--set"])
        .arg(format!("input={}", s(&input)))
        .args(["--set", "output=../in.nii.gz"])
        .output()
        .unwrap();
    assert!(assert_clear_error(&o).contains("is the same file as the input"));
    assert_eq!(std::fs::read(&input).unwrap(), bytes);

    // Two nodes writing one file.
    let two = write_graph(
        &d,
        "two.yaml",
        &format!(
            "graph: two\nnodes:\n  read: {{ kind: read_volume, path: \"phantom:small\", as: label }}\n  \
             a: {{ kind: write_volume, in: read, path: {} }}\n  \
             b: {{ kind: write_volume, in: read, path: {} }}\n",
            d.join("x/o.nii.gz").display(),
            d.join("x/../x/o.nii.gz").display()
        ),
    );
    std::fs::create_dir(d.join("x")).unwrap();
    let err = assert_clear_error(&voxflow(&["-q", "run", s(&two)]));
    assert!(err.contains("is the same file as the output"), "{err}");
    assert!(tree(&d.join("x")).is_empty());
}

#[test]
fn every_written_param_is_a_path_param() {
    let reg = voxflow_nodes::registry();
    let mut writers = 0;
    for e in reg.entries() {
        for w in &e.decl.writes {
            let p = e.decl.params.iter().find(|p| &p.name == w);
            assert!(
                p.is_some_and(|p| matches!(p.ty, ParamType::Path | ParamType::PathList)),
                "{}: `{w}` is not a path param",
                e.decl.kind
            );
            writers += 1;
        }
    }
    // write_volume, overlay, report, stats (2), metrics (2), risk (2), survival_features (2),
    // write_dicom_seg.
    assert_eq!(writers, 12);
}

#[test]
fn a_graph_with_more_nodes_than_threads_is_a_clear_error() {
    let d = temp_dir("faults-threads");
    let mut text =
        String::from("graph: wide\nnodes:\n  ct: { kind: read_volume, path: \"phantom:small\" }\n");
    for n in 0..19_998 {
        text.push_str(&format!(
            "  w{n}: {{ kind: hu_window, in: ct, min: -100, max: 400 }}\n"
        ));
    }
    let out = d.join("res/wide.nii.gz");
    text.push_str(&format!(
        "  save: {{ kind: write_volume, in: w0, path: {} }}\n",
        out.display()
    ));
    let g = write_graph(&d, "wide.yaml", &text);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxflow"));
    cmd.args(["-q", "run", s(&g)]);
    // 1 GiB of address space holds a few hundred thread stacks, not 20,000 (a limit that also
    // binds root, unlike the one on processes).
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    let err = assert_clear_error(&o);
    assert!(err.contains("cannot start the node threads"), "{err}");
    assert!(err.contains("20000 nodes"), "{err}");
    assert!(err.contains("40064 MiB of address space"), "{err}");
    assert_eq!(tree(&d), [g]);
}

#[test]
fn batch_error_column_is_one_line_and_the_whole_text_is_logged() {
    let d = temp_dir("faults-batch");
    let g = write_graph(
        &d,
        "win.yaml",
        "graph: win\nparams:\n  input: { default: \"phantom:small\" }\n  lo: { default: -100 }\n  \
         hi: { default: 400 }\n  output: { default: \"out.nii.gz\" }\nnodes:\n  \
         ct: { kind: read_volume, path: $input }\n  \
         w: { kind: hu_window, in: ct, min: $lo, max: $hi }\n  \
         save: { kind: write_volume, in: w, path: $output }\n",
    );
    let m = d.join("cases.csv");
    // Case `two`: two check errors; case `gone`: a child that fails.
    std::fs::write(
        &m,
        "id,input,lo,hi\nok,phantom:small,-100,400\ntwo,phantom:small,low,high\n\
         gone,missing.nii.gz,-100,400\n",
    )
    .unwrap();
    let out = d.join("out");
    let o = voxflow(&["-q", "batch", s(&g), "--manifest", s(&m), "--out", s(&out)]);
    assert!(!o.status.success());
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    let two = lines.iter().find(|l| l.starts_with("two,")).unwrap();
    assert!(
        two.contains("param `min`") && two.contains("run.log"),
        "{two}"
    );
    let log = std::fs::read_to_string(out.join("two/run.log")).unwrap();
    assert!(
        log.contains("param `min`") && log.contains("param `max`"),
        "{log}"
    );
    let gone = lines.iter().find(|l| l.starts_with("gone,")).unwrap();
    assert!(gone.contains("missing.nii.gz"), "{gone}");
    assert!(!out.join("ok/run.log").exists());
}

#[test]
fn model_folder_and_missing_graph_file_are_named() {
    let d = temp_dir("faults-msgs");
    let folder = d.join("model.onnx");
    std::fs::create_dir(&folder).unwrap();
    let out = d.join("res/ct.nii.gz");
    let o = voxflow(&[
        "-q",
        "run",
        s(&root().join("graphs/ct_liver_lesion.yaml")),
        "--set",
        &format!("liver_model={}", s(&folder)),
        "--set",
        &format!("output={}", s(&out)),
    ]);
    let err = assert_clear_error(&o);
    assert!(
        err.contains(&format!("model path {} is a folder", s(&folder))),
        "{err}"
    );
    assert!(err.contains("node `liver`"), "{err}");
    assert!(!d.join("res").exists());

    let missing = d.join("nowhere/graph.yaml");
    for cmd in ["run", "check"] {
        let err = assert_clear_error(&voxflow(&[cmd, s(&missing)]));
        assert!(
            err.contains(&format!("{}: cannot read graph file", s(&missing))),
            "{err}"
        );
        assert!(!err.contains(":0:0"), "{err}");
    }
}

/// Runs `voxflow run ARGS` with DIR on a tmpfs of `size` in a mount namespace of its own (no
/// root needed where user namespaces are allowed), then lists what is left in DIR.
fn run_on_small_disk(dir: &Path, size: &str, args: &[&str]) -> (Output, String) {
    std::fs::create_dir_all(dir).unwrap();
    let script =
        "mount -t tmpfs -o size=$1 tmpfs \"$2\" || exit 99; shift 2; \"$@\" 2>&1 1>/dev/null; \
                  rc=$?; echo LEFT; find \"$DIR\" -mindepth 1; exit $rc";
    let o = Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .args([size, s(dir), env!("CARGO_BIN_EXE_voxflow")])
        .args(args)
        .env("DIR", dir)
        .output()
        .expect("run unshare (util-linux)");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_ne!(
        o.status.code(),
        Some(99),
        "cannot mount a tmpfs in a user namespace: {}",
        stderr(&o)
    );
    (o, text)
}

#[test]
fn a_full_disk_is_named_and_leaves_nothing() {
    let d = temp_dir("faults-full");
    let full = d.join("full");
    let g = write_graph(
        &d,
        "report.yaml",
        &format!(
            "graph: rep\nnodes:\n  ct: {{ kind: read_volume, path: \"phantom:small\" }}\n  \
             lab: {{ kind: read_volume, path: \"phantom:small\", as: label }}\n  \
             win: {{ kind: hu_window, in: ct, min: -100, max: 400 }}\n  \
             ov: {{ kind: overlay, image: win, label: lab, dir: {0}/seg_overlays, every: 1 }}\n  \
             st: {{ kind: stats, label: lab, json: {0}/stats.json }}\n",
            full.display()
        ),
    );
    let (o, text) = run_on_small_disk(&full, "64k", &["-q", "run", s(&g)]);
    let (msg, left) = text.split_once("LEFT\n").unwrap();
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(msg.contains("No space left on device"), "{msg}");
    assert!(
        msg.contains(&format!("{}/seg_overlays/", full.display())),
        "{msg}"
    );
    assert!(!msg.contains("panicked") && !msg.contains("Os {"), "{msg}");
    assert_eq!(left, "", "left on the full disk");

    // A NIfTI output in a folder the run makes: the message names the output, not its
    // temporary, and the folder goes again.
    let g = write_graph(&d, "copy.yaml", COPY);
    let out = full.join("sub/labels.nii.gz");
    let (o, text) = run_on_small_disk(
        &full,
        "8k",
        &["-q", "run", s(&g), "--set", &format!("output={}", s(&out))],
    );
    let (msg, left) = text.split_once("LEFT\n").unwrap();
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(msg.contains("No space left on device"), "{msg}");
    assert!(msg.contains(&format!("cannot write {}", s(&out))), "{msg}");
    assert!(
        !msg.contains("panicked") && !msg.contains(".voxflow-tmp"),
        "{msg}"
    );
    assert_eq!(left, "", "left on the full disk");
}
