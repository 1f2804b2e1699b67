//! Graph composition: a `kind: graph` node includes another graph file.

mod common;
use common::*;
use std::path::Path;

/// `sub/inner.yaml`: reads a phantom, windows it, writes the window to `$out` and a copy next
/// to itself (a path written in the included file resolves against that file's folder).
const INNER: &str = "graph: inner
params:
  input: { default: \"phantom:small\" }
  out:   { default: \"never.nii.gz\" }
nodes:
  r: { kind: read_volume, path: $input }
  w: { kind: hu_window, in: r, min: -100, max: 400 }
  s: { kind: write_volume, in: w, path: $out }
  k: { kind: write_volume, in: w, path: beside_inner.nii.gz }
";

fn setup(name: &str, outer: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let d = temp_dir(name);
    std::fs::create_dir_all(d.join("sub")).unwrap();
    write_graph(&d.join("sub"), "inner.yaml", INNER);
    let g = write_graph(&d, "outer.yaml", outer);
    (d, g)
}

fn stderr_of(args: &[&str]) -> String {
    let o = voxflow(args);
    assert!(!o.status.success(), "voxflow {args:?} should fail");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn include_runs_its_params_set_and_its_node_used_as_a_port() {
    let (d, g) = setup(
        "include-run",
        "graph: outer
nodes:
  seg: { kind: graph, file: sub/inner.yaml, out: from_caller.nii.gz }
  again: { kind: write_volume, in: seg.w, path: outer_copy.nii.gz }
",
    );
    voxflow_ok(&["-q", "run", g.to_str().unwrap()]);
    // The caller's value is a path written in the caller: relative to the caller's folder.
    assert!(d.join("from_caller.nii.gz").is_file());
    assert!(!d.join("sub/never.nii.gz").exists());
    assert!(!d.join("never.nii.gz").exists());
    // A path written in the included file: relative to that file's folder.
    assert!(d.join("sub/beside_inner.nii.gz").is_file());
    // The included node's output, used as a port of the caller.
    let a = std::fs::read(d.join("outer_copy.nii.gz")).unwrap();
    let b = std::fs::read(d.join("from_caller.nii.gz")).unwrap();
    assert_eq!(
        a, b,
        "seg.w written by the caller differs from the included graph's output"
    );
}

#[test]
fn include_switched_off_and_drawn_as_a_cluster() {
    let (d, g) = setup(
        "include-dot",
        "graph: outer
params:
  on: { default: true }
nodes:
  seg: { kind: graph, file: sub/inner.yaml, out: o.nii.gz, enabled: $on }
",
    );
    let o = voxflow_ok(&["graph", "--dot", g.to_str().unwrap()]);
    let dot = String::from_utf8_lossy(&o.stdout);
    assert!(dot.contains("subgraph cluster_0"), "{dot}");
    assert!(dot.contains("label=\"seg (inner.yaml)\""), "{dot}");
    assert!(dot.contains("\"seg/r\" -> \"seg/w\""), "{dot}");
    voxflow_ok(&["-q", "run", g.to_str().unwrap(), "--set", "on=false"]);
    assert!(!d.join("o.nii.gz").exists());
    assert!(!d.join("sub/beside_inner.nii.gz").exists());
}

#[test]
fn error_in_an_included_file_names_that_file_and_place() {
    let d = temp_dir("include-err");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    let bad = INNER.replace("min: -100", "minn: -100");
    let inner = write_graph(&d.join("sub"), "inner.yaml", &bad);
    let g = write_graph(
        &d,
        "outer.yaml",
        "graph: outer\nnodes:\n  seg: { kind: graph, file: sub/inner.yaml }\n",
    );
    let e = stderr_of(&["check", g.to_str().unwrap()]);
    // `minn` is on line 7, column 32 of the included file.
    let want = format!("{}:7:32: node `seg/w`", inner.display());
    assert!(e.contains(&want), "expected `{want}` in:\n{e}");
    assert!(e.contains("no input or param `minn`"), "{e}");
}

#[test]
fn unknown_param_of_an_include_is_refused_at_its_line() {
    let (_, g) = setup(
        "include-unknown",
        "graph: outer
nodes:
  seg: { kind: graph, file: sub/inner.yaml, outt: x.nii.gz }
",
    );
    let e = stderr_of(&["check", g.to_str().unwrap()]);
    let want = format!("{}:3:45: node `seg`", g.display());
    assert!(e.contains(&want), "expected `{want}` in:\n{e}");
    assert!(
        e.contains("has no param `outt` (did you mean `out`?)"),
        "{e}"
    );
}

#[test]
fn include_cycle_is_refused_naming_the_chain() {
    let d = temp_dir("include-cycle");
    let a = write_graph(
        &d,
        "a.yaml",
        "graph: a\nnodes:\n  b: { kind: graph, file: b.yaml }\n",
    );
    write_graph(
        &d,
        "b.yaml",
        "graph: b\nnodes:\n  a: { kind: graph, file: a.yaml }\n",
    );
    let e = stderr_of(&["check", a.to_str().unwrap()]);
    let canon = |n: &str| d.join(n).canonicalize().unwrap().display().to_string();
    let chain = format!(
        "{} -> {} -> {}",
        canon("a.yaml"),
        canon("b.yaml"),
        canon("a.yaml")
    );
    assert!(e.contains("graph files include each other"), "{e}");
    assert!(e.contains(&chain), "expected `{chain}` in:\n{e}");
    assert!(
        e.contains(&format!("{}:3:", d.join("b.yaml").display())),
        "{e}"
    );
}

/// The shipped survival graph = the CT graph included + the feature nodes, on the phantom with
/// the tiny test models: its features describe the label the included CT graph wrote.
#[test]
fn survival_graph_composes_the_ct_graph() {
    let g = root().join("graphs/ct_liver_lesion_survival.yaml");
    voxflow_ok(&["-q", "check", g.to_str().unwrap()]);
    let d = temp_dir("include-survival");
    let models = root().join("nodes/kernels/onnx/tests/models");
    let model = |n: &str| models.join(n).display().to_string();
    let sets = [
        "input=phantom:small".to_string(),
        format!("output={}", d.join("seg.nii.gz").display()),
        format!("features_json={}", d.join("f.json").display()),
        format!("features_csv={}", d.join("f.csv").display()),
        format!("liver_model={}", model("tiny_fcn.onnx")),
        format!("lesion_model={}", model("identity_lesion_level.onnx")),
        "device=cpu".to_string(),
    ];
    let mut args = vec!["-q", "run", g.to_str().unwrap()];
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    voxflow_ok(&args);
    assert!(d.join("seg.nii.gz").is_file());
    // report defaults to false here: the CT graph's report nodes are off.
    assert!(!d.join("seg.html").exists());
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("f.json")).unwrap()).unwrap();
    assert!(f.to_string().contains("liver"), "{f}");
    let dot = voxflow_ok(&["graph", "--dot", g.to_str().unwrap()]);
    let dot = String::from_utf8_lossy(&dot.stdout);
    assert!(dot.contains("\"seg/label\" -> \"features\""), "{dot}");
    assert!(Path::new(&d).join("f.csv").is_file());
}

/// `sub/part.yaml`: a graph with an input, which only runs included.
const PART: &str = "graph: part
inputs:
  img: { about: \"the image to window\" }
params:
  out: {}
nodes:
  w: { kind: hu_window, in: img, min: -100, max: 400 }
  s: { kind: write_volume, in: w, path: $out }
";

/// `sub/wrapper.yaml`: includes the part, passing its own input on.
const WRAPPER: &str = "graph: wrapper
inputs:
  img: {}
params:
  out: {}
nodes:
  p: { kind: graph, file: part.yaml, img: img, out: $out }
";

fn setup_part(name: &str, outer: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let d = temp_dir(name);
    std::fs::create_dir_all(d.join("sub")).unwrap();
    write_graph(&d.join("sub"), "part.yaml", PART);
    write_graph(&d.join("sub"), "wrapper.yaml", WRAPPER);
    let g = write_graph(&d, "outer.yaml", outer);
    (d, g)
}

#[test]
fn graph_inputs_carry_the_callers_streams_through_nested_includes() {
    let (d, g) = setup_part(
        "include-inputs",
        "graph: outer
nodes:
  r: { kind: read_volume, path: \"phantom:small\" }
  direct: { kind: graph, file: sub/part.yaml, img: r, out: direct.nii.gz }
  nested: { kind: graph, file: sub/wrapper.yaml, img: r.out, out: nested.nii.gz }
  w: { kind: hu_window, in: r, min: -100, max: 400 }
  s: { kind: write_volume, in: w, path: plain.nii.gz }
",
    );
    voxflow_ok(&["-q", "run", g.to_str().unwrap()]);
    let plain = std::fs::read(d.join("plain.nii.gz")).unwrap();
    for f in ["direct.nii.gz", "nested.nii.gz"] {
        assert!(
            std::fs::read(d.join(f)).unwrap() == plain,
            "{f} differs from the same nodes written without an include"
        );
    }
    let dot = voxflow_ok(&["graph", "--dot", g.to_str().unwrap()]);
    let dot = String::from_utf8_lossy(&dot.stdout);
    assert!(dot.contains("\"r\" -> \"direct/w\""), "{dot}");
    assert!(dot.contains("\"r\" -> \"nested/p/w\""), "{dot}");
}

#[test]
fn graph_input_errors_name_the_place() {
    // Not connected: at the include node.
    let (_, g) = setup_part(
        "include-input-missing",
        "graph: outer\nnodes:\n  p: { kind: graph, file: sub/part.yaml, out: x.nii.gz }\n",
    );
    let e = stderr_of(&["check", g.to_str().unwrap()]);
    assert!(e.contains(&format!("{}:3:3: node `p`", g.display())), "{e}");
    assert!(e.contains("input `img` of the included graph"), "{e}");
    assert!(e.contains("is not connected"), "{e}");
    // Connected to a node that does not exist: at the value, in the caller's file.
    let (_, g) = setup_part(
        "include-input-unknown",
        "graph: outer
nodes:
  r: { kind: read_volume, path: \"phantom:small\" }
  p: { kind: graph, file: sub/part.yaml, img: rr, out: x.nii.gz }
",
    );
    let e = stderr_of(&["check", g.to_str().unwrap()]);
    assert!(
        e.contains(&format!("{}:4:47: node `p`", g.display())),
        "{e}"
    );
    assert!(e.contains("no node named `rr` (did you mean `r`?)"), "{e}");
    // A misspelt input is suggested.
    let (_, g) = setup_part(
        "include-input-typo",
        "graph: outer
nodes:
  r: { kind: read_volume, path: \"phantom:small\" }
  p: { kind: graph, file: sub/part.yaml, imgg: r, out: x.nii.gz }
",
    );
    let e = stderr_of(&["check", g.to_str().unwrap()]);
    assert!(
        e.contains("has no param or input `imgg` (did you mean `img`?)"),
        "{e}"
    );
    // An input named like a param of the part: refused at the input.
    let d = temp_dir("include-input-param");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    let clash = write_graph(
        &d.join("sub"),
        "part.yaml",
        &PART.replace("  img: { about", "  out: {}\n  img: { about"),
    );
    let g = write_graph(
        &d,
        "outer.yaml",
        "graph: outer\nnodes:\n  r: { kind: read_volume, path: \"phantom:small\" }\n  p: { kind: graph, file: sub/part.yaml, img: r, out: x.nii.gz }\n",
    );
    let e = stderr_of(&["check", g.to_str().unwrap()]);
    assert!(
        e.contains(&format!("{}:3:3: graph input `out`", clash.display())),
        "{e}"
    );
    // A part does not run by itself.
    let (d, _) = setup_part("include-input-alone", "graph: outer\nnodes: {}\n");
    let part = d.join("sub/part.yaml");
    let e = stderr_of(&["run", part.to_str().unwrap(), "--set", "out=x.nii.gz"]);
    assert!(e.contains(&format!("{}:3:3", part.display())), "{e}");
    assert!(e.contains("this graph has inputs (`img`)"), "{e}");
    assert!(!d.join("sub/x.nii.gz").exists());
}

/// The CT and MRI graphs share their report nodes through graphs/parts/report.yaml.
#[test]
fn shipped_graphs_share_the_report_part() {
    for g in ["ct_liver_lesion.yaml", "mri_liver.yaml"] {
        let path = root().join("graphs").join(g);
        let o = voxflow_ok(&["graph", "--dot", path.to_str().unwrap()]);
        let dot = String::from_utf8_lossy(&o.stdout);
        assert!(dot.contains("label=\"report (report.yaml)\""), "{g}: {dot}");
        for node in ["overlay", "stats", "html", "seg"] {
            assert!(dot.contains(&format!("\"report/{node}\"")), "{g}: {dot}");
        }
    }
}
