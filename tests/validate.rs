//! `voxflow check`: one test per error class, each asserting the message and its line.

mod common;
use common::*;
use voxflow_runtime::validate::CheckOptions;
use voxflow_runtime::{check, check_all_ways, GraphDoc};

fn errors(text: &str, set: &[(&str, &str)]) -> Vec<(u64, String)> {
    let doc = match GraphDoc::parse(text, std::path::Path::new("/g/test.yaml")) {
        Ok(d) => d,
        Err(d) => {
            return d
                .0
                .into_iter()
                .map(|e| (e.pos.line, e.to_string()))
                .collect()
        }
    };
    let opts = CheckOptions {
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), voxflow_runtime::validate::parse_set_value(v)))
            .collect(),
        cwd: "/cwd".into(),
        require_values: true,
    };
    match check_all_ways(&doc, &voxflow_nodes::registry(), &opts) {
        Ok(_) => vec![],
        Err(d) => {
            d.0.into_iter()
                .map(|e| (e.pos.line, e.to_string()))
                .collect()
        }
    }
}

fn assert_error(errs: &[(u64, String)], line: u64, needle: &str) {
    assert!(
        errs.iter().any(|(l, m)| *l == line && m.contains(needle)),
        "expected `{needle}` at line {line}, got {errs:#?}"
    );
}

const HEAD: &str = "graph: t\nparams:\n  input: { default: \"phantom:small\" }\nnodes:\n";

#[test]
fn valid_graph_has_no_errors() {
    let g = format!(
        "{HEAD}  ct: {{ kind: read_volume, path: $input }}\n  w: {{ kind: hu_window, in: ct }}\n"
    );
    assert_eq!(errors(&g, &[]), vec![]);
}

#[test]
fn unknown_kind_with_suggestion() {
    let g = format!(
        "{HEAD}  ct: {{ kind: read_volume, path: $input }}\n  w: {{ kind: hu_windw, in: ct }}\n"
    );
    let e = errors(&g, &[]);
    assert_error(
        &e,
        6,
        "unknown node kind `hu_windw` (did you mean `hu_window`?)",
    );
    assert!(e[0].1.starts_with("/g/test.yaml:6:"), "{e:?}");
    assert!(e[0].1.contains("node `w`"), "{e:?}");
}

#[test]
fn unknown_param_with_suggestion() {
    let g = format!("{HEAD}  ct: {{ kind: read_volume, path: $input }}\n  w:\n    kind: hu_window\n    in: ct\n    mni: 3\n");
    assert_error(
        &errors(&g, &[]),
        9,
        "`hu_window` has no input or param `mni` (did you mean `min`?)",
    );
}

#[test]
fn missing_param() {
    let g = format!("{HEAD}  ct: {{ kind: read_volume }}\n");
    assert_error(&errors(&g, &[]), 5, "missing param `path`");
}

#[test]
fn bad_values() {
    let g = format!("{HEAD}  ct: {{ kind: read_volume, path: $input }}\n  w: {{ kind: hu_window, in: ct, min: low }}\n  e: {{ kind: equalize, in: w, bins: 1 }}\n  f: {{ kind: hu_window, in: ct, scale: unitt }}\n");
    let e = errors(&g, &[]);
    assert_error(&e, 6, "param `min`: expected a number");
    assert_error(&e, 7, "param `bins`: 1 is out of range");
    assert_error(&e, 8, "(did you mean `unit`?)");
    // All errors are reported at once.
    assert_eq!(e.len(), 3, "{e:?}");
}

#[test]
fn cross_param_check() {
    let g = format!("{HEAD}  ct: {{ kind: read_volume, path: $input }}\n  w: {{ kind: hu_window, in: ct, min: 400, max: 100 }}\n");
    assert_error(&errors(&g, &[]), 6, "param `max`: must be greater than min");
}

#[test]
fn unknown_upstream() {
    let g = format!(
        "{HEAD}  ct: {{ kind: read_volume, path: $input }}\n  w: {{ kind: hu_window, in: cct }}\n"
    );
    assert_error(
        &errors(&g, &[]),
        6,
        "input `in`: no node named `cct` (did you mean `ct`?)",
    );
}

#[test]
fn unknown_output_port() {
    let g = format!("{HEAD}  ct: {{ kind: read_volume, path: $input }}\n  w: {{ kind: hu_window, in: ct.prob }}\n");
    assert_error(&errors(&g, &[]), 6, "has no output `prob`");
}

#[test]
fn type_mismatch() {
    let g = format!("{HEAD}  ct: {{ kind: read_volume, path: $input, as: label }}\n  w: {{ kind: hu_window, in: ct }}\n");
    assert_error(
        &errors(&g, &[]),
        6,
        "input `in` needs a image stream but `ct` gives label",
    );
}

#[test]
fn cycle() {
    let g = format!("{HEAD}  a: {{ kind: hu_window, in: b }}\n  b: {{ kind: hu_window, in: a }}\n");
    assert_error(&errors(&g, &[]), 5, "cycle through nodes a, b");
}

#[test]
fn param_never_defined() {
    let g = format!("{HEAD}  ct: {{ kind: read_volume, path: $inptu }}\n");
    assert_error(
        &errors(&g, &[]),
        5,
        "graph param `$inptu` is never defined (did you mean `input`?)",
    );
}

#[test]
fn unconnected_input() {
    let g = format!("{HEAD}  w: {{ kind: hu_window }}\n");
    assert_error(&errors(&g, &[]), 5, "input `in` is not connected");
}

#[test]
fn duplicate_node_and_syntax() {
    let e = errors("graph: t\nnodes:\n  a: { kind: read_volume, path: x\n", &[]);
    assert!(
        e[0].0 >= 3 && e[0].1.contains("invalid graph file"),
        "{e:?}"
    );
    let e = errors("graph: t\nnodez: {}\n", &[]);
    assert!(e[0].1.contains("invalid graph file"), "{e:?}");
}

#[test]
fn set_unknown_param_and_missing_value() {
    let g = format!("{HEAD}  ct: {{ kind: read_volume, path: $input }}\n");
    assert!(errors(&g, &[("inptu", "x")])
        .iter()
        .any(|(_, m)| m
            .contains("--set inptu: the graph has no param `inptu` (did you mean `input`?)")));
    let g2 = "graph: t\nparams:\n  truth: { about: \"needs a value\" }\nnodes:\n  t: { kind: read_volume, path: $truth }\n";
    assert_error(
        &errors(g2, &[]),
        3,
        "graph param `truth` has no default; give it with --set truth=VALUE",
    );
}

#[test]
fn enabled_is_checked_both_ways() {
    // Switching `w` off disables `e` too (it needs w); the graph is valid both ways.
    let g = "graph: t\nparams:\n  pre: { default: true }\nnodes:\n  ct: { kind: read_volume, path: \"phantom:small\" }\n  w: { kind: hu_window, in: ct, enabled: $pre }\n  e: { kind: equalize, in: w }\n  s: { kind: write_volume, in: ct, path: ct.nii.gz }\n";
    assert_eq!(errors(g, &[]), vec![]);
    let doc = GraphDoc::parse(g, std::path::Path::new("t.yaml")).unwrap();
    let reg = voxflow_nodes::registry();
    let off = CheckOptions {
        set: vec![("pre".into(), false.into())],
        ..Default::default()
    };
    let plan = check(&doc, &reg, &off).unwrap();
    assert_eq!(plan.nodes.len(), 2);
    assert_eq!(plan.disabled, vec!["w".to_string(), "e".to_string()]);
    // A bad value that only matters when the switch is flipped is still found.
    let g2 = "graph: t\nparams:\n  pre: { default: true }\nnodes:\n  ct: { kind: read_volume, path: \"phantom:small\" }\n  w: { kind: hu_window, in: ct, enabled: $pre }\n  e: { kind: equalize, in: w, enabled: 3 }\n";
    assert_error(&errors(g2, &[]), 7, "`enabled` must be true or false");
}

#[test]
fn nodes_feeding_only_switched_off_nodes_are_switched_off() {
    // `gt` feeds only `m`; with `m` off nothing reads the truth file, so `gt` is off too, while
    // `ct` still feeds `s`.
    let g = "graph: t\nparams:\n  report: { default: true }\nnodes:\n  ct: { kind: read_volume, path: \"phantom:small\", as: label }\n  gt: { kind: read_volume, path: \"phantom:small\", as: label }\n  m: { kind: metrics, pred: ct, truth: gt, json: m.json, enabled: $report }\n  s: { kind: write_volume, in: ct, path: ct.nii.gz }\n";
    let doc = GraphDoc::parse(g, std::path::Path::new("t.yaml")).unwrap();
    let reg = voxflow_nodes::registry();
    let on = check(&doc, &reg, &CheckOptions::default()).unwrap();
    assert_eq!(on.nodes.len(), 4);
    assert!(on.disabled.is_empty());
    let off = CheckOptions {
        set: vec![("report".into(), false.into())],
        ..Default::default()
    };
    let plan = check(&doc, &reg, &off).unwrap();
    assert_eq!(plan.disabled, vec!["gt".to_string(), "m".to_string()]);
    let ids: Vec<&str> = plan.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["ct", "s"]);
}

#[test]
fn relative_paths_resolve_by_origin() {
    let g = "graph: t\nparams:\n  input: { default: \"scan.nii.gz\" }\nnodes:\n  ct: { kind: read_volume, path: $input }\n";
    let doc = GraphDoc::parse(g, std::path::Path::new("/graphs/t.yaml")).unwrap();
    let reg = voxflow_nodes::registry();
    let mut o = CheckOptions {
        cwd: "/work".into(),
        ..Default::default()
    };
    let p = check(&doc, &reg, &o).unwrap();
    assert_eq!(
        p.nodes[0].params.str("path").unwrap(),
        "/graphs/scan.nii.gz"
    );
    o.set.push(("input".into(), "mine.nii".into()));
    let p = check(&doc, &reg, &o).unwrap();
    assert_eq!(p.nodes[0].params.str("path").unwrap(), "/work/mine.nii");
    o.set[0].1 = "phantom:small".into();
    let p = check(&doc, &reg, &o).unwrap();
    assert_eq!(p.nodes[0].params.str("path").unwrap(), "phantom:small");
}

#[test]
fn cli_check_reports_all_errors_and_fails() {
    let d = temp_dir("cli-check");
    let g = write_graph(&d, "bad.yaml", &format!("{HEAD}  ct: {{ kind: read_volume, path: $input }}\n  w: {{ kind: hu_windw, in: ct }}\n  e: {{ kind: equalize, in: w, bins: 0 }}\n"));
    let o = voxflow(&["check", g.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.yaml:6:") && err.contains("bad.yaml:7:"),
        "{err}"
    );
    let ok = voxflow(&[
        "check",
        root().join("graphs/ct_preprocess.yaml").to_str().unwrap(),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn exclusive_bound() {
    // `sigma_int` must be > 0: 0 is refused at its line, a small positive value passes.
    let g = |v: &str| {
        format!("{HEAD}  ct: {{ kind: read_volume, path: $input }}\n  w: {{ kind: hu_window, in: ct, scale: none }}\n  p: {{ kind: read_volume, path: $input, as: label }}\n  oh: {{ kind: paste_back, liver: p, lesion: l }}\n  l: {{ kind: read_volume, path: $input, as: prob }}\n  c:\n    kind: dense_crf\n    image: w\n    prob: oh\n    sigma_int: {v}\n")
    };
    assert_error(
        &errors(&g("0"), &[]),
        14,
        "param `sigma_int`: 0 is out of range (must be float > 0)",
    );
    assert_eq!(errors(&g("0.001"), &[]), vec![]);
}
