//! The generated documentation matches the code.

mod common;
use common::*;

#[test]
fn node_reference_is_up_to_date() {
    let o = voxflow_ok(&["nodes", "--markdown"]);
    let generated = String::from_utf8(o.stdout).unwrap();
    let committed = std::fs::read_to_string(root().join("docs/NODES.md")).unwrap_or_default();
    assert!(
        generated == committed,
        "docs/NODES.md is out of date: run `make docs` (voxflow nodes --markdown > docs/NODES.md)"
    );
    // Every built-in kind has its section.
    for e in voxflow_nodes::registry().entries() {
        assert!(
            generated.contains(&format!("\n## {}\n", e.decl.kind)),
            "{} missing",
            e.decl.kind
        );
    }
}

#[test]
fn shipped_graphs_pass_check() {
    for entry in std::fs::read_dir(root().join("graphs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "yaml") {
            let o = voxflow(&["check", "-q", p.to_str().unwrap()]);
            assert!(
                o.status.success(),
                "{}: {}",
                p.display(),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

#[test]
fn nodes_command_shows_a_kind_and_suggests() {
    let o = voxflow_ok(&["nodes", "hu_window"]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("zero_above") && s.contains("Inputs:"), "{s}");
    let o = voxflow(&["nodes", "hu_windw"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("did you mean `hu_window`"));
    // Global flags work after the subcommand too.
    let o = voxflow_ok(&["nodes", "-q"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("read_volume"));
}

#[test]
fn dot_output_draws_every_edge() {
    let o = voxflow_ok(&[
        "graph",
        root().join("graphs/ct_preprocess.yaml").to_str().unwrap(),
        "--dot",
    ]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.starts_with("digraph"), "{s}");
    assert!(
        s.contains("\"ct\" -> \"window\"") && s.contains("\"eq\" -> \"save\""),
        "{s}"
    );
}
