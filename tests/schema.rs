//! The JSON Schema of graph files: committed up to date, every shipped graph valid under an
//! independent validator (the `jsonschema` crate), mistakes caught.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const SCHEMA: &str = "docs/voxflow-graph.schema.json";

fn schema() -> Value {
    let text = std::fs::read_to_string(root().join(SCHEMA)).expect("read the committed schema");
    serde_json::from_str(&text).expect("the schema is JSON")
}

/// Schema errors of a graph text (YAML read into JSON values), one line each.
fn errors(validator: &jsonschema::Validator, yaml: &str) -> Vec<String> {
    let doc: Value = serde_saphyr::from_str(yaml).expect("graph text is YAML");
    validator
        .iter_errors(&doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// The graph files shipped in the repository: the YAML files with a top-level `graph:` in
/// graphs/, graphs/parts/, training/ and scripts/.
fn shipped_graphs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["graphs", "graphs/parts", "training", "scripts"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            if p.extension().is_some_and(|x| x == "yaml")
                && text.lines().any(|l| l.starts_with("graph:"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn committed_schema_is_up_to_date() {
    let o = voxflow_ok(&["schema"]);
    let generated = String::from_utf8(o.stdout).unwrap();
    let committed = std::fs::read_to_string(root().join(SCHEMA)).unwrap_or_default();
    assert!(
        generated == committed,
        "{SCHEMA} is out of date: run `make docs` (voxflow schema > {SCHEMA})"
    );
    // Every built-in kind has its rule.
    let s: Value = serde_json::from_str(&generated).unwrap();
    for e in voxflow_nodes::registry().entries() {
        assert!(
            s["definitions"][format!("kind_{}", e.decl.kind)].is_object(),
            "{} missing",
            e.decl.kind
        );
    }
}

#[test]
fn shipped_graphs_are_valid_and_point_at_the_schema() {
    let validator = jsonschema::validator_for(&schema()).expect("the schema compiles");
    let graphs = shipped_graphs();
    assert!(graphs.len() >= 8, "found only {graphs:?}");
    for g in &graphs {
        let text = std::fs::read_to_string(g).unwrap();
        let first = text.lines().next().unwrap_or_default();
        let rel = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{}: first line is not the $schema line", g.display()));
        let target = g.parent().unwrap().join(rel);
        assert!(
            target.canonicalize().ok() == root().join(SCHEMA).canonicalize().ok(),
            "{}: $schema={rel} does not lead to {SCHEMA}",
            g.display()
        );
        let errs = errors(&validator, &text);
        assert!(errs.is_empty(), "{}:\n{}", g.display(), errs.join("\n"));
    }
}

/// A graph exercising the value forms: substitutions whole and inside text, `enabled`, lists,
/// numbers given as text, optional ports left out.
const GOOD: &str = r#"
graph: forms
about: value forms the validator accepts
params:
  input:  { default: "phantom:", about: "image" }
  lo:     { default: -100 }
  out:    {}
  n4:     { default: false }
nodes:
  ct:     { kind: read_volume, path: $input, as: image }
  window: { kind: hu_window, in: ct, min: $lo, max: "400", scale: unit }
  n4:     { kind: n4, in: ct, enabled: $n4 }
  norm:   { kind: mr_normalize, in: ct, corrected: n4.out }
  save:   { kind: write_volume, in: window, path: "${out:stem}.nii.gz", enabled: "${out:set}", about: a note }
  ov:     { kind: overlay, image: window, label: lab, dir: out, window: [$lo, 400] }
  lab:    { kind: read_volume, path: labels.nii.gz, as: label }
"#;

fn check_with_voxflow(dir: &Path, name: &str, text: &str) -> bool {
    let g = write_graph(dir, name, text);
    voxflow(&["check", "-q", g.to_str().unwrap()])
        .status
        .success()
}

#[test]
fn schema_and_validator_agree_on_mistakes() {
    let validator = jsonschema::validator_for(&schema()).expect("the schema compiles");
    let dir = temp_dir("schema");
    let errs = errors(&validator, GOOD);
    assert!(errs.is_empty(), "{}", errs.join("\n"));
    assert!(check_with_voxflow(&dir, "good.yaml", GOOD));

    let ct = std::fs::read_to_string(root().join("graphs/ct_liver_lesion.yaml")).unwrap();
    assert!(ct.contains("bins: 256") && ct.contains("min_box: 60"));
    // (mutated graph, what the schema error names)
    let cases = [
        (
            "misspelt param",
            ct.replace("bins: 256", "bnis: 256"),
            "bnis",
        ),
        (
            "wrong type",
            ct.replace("bins: 256", "bins: many"),
            "/nodes/eq/bins",
        ),
        (
            "out of range",
            ct.replace("min_box: 60", "min_box: -1"),
            "/nodes/crop/min_box",
        ),
        (
            "not in the enum",
            ct.replace("scale: unit", "scale: unity"),
            "/nodes/unit/scale",
        ),
        (
            "unknown kind",
            ct.replace("kind: equalize", "kind: equalise"),
            "/nodes/eq/kind",
        ),
        (
            "missing required param",
            ct.replace(", path: $output", ""),
            "path",
        ),
        ("unknown top-level key", format!("{ct}extra: 1\n"), "extra"),
        (
            "enabled not a bool",
            ct.replace("enabled: $report", "enabled: yes please"),
            "enabled",
        ),
    ];
    for (what, text, names) in cases {
        assert_ne!(text, ct, "{what}: the mutation changed nothing");
        let errs = errors(&validator, &text);
        assert!(
            errs.iter().any(|e| e.contains(names)),
            "{what}: the schema should reject it naming `{names}`, got {errs:?}"
        );
        assert!(
            !check_with_voxflow(&dir, "bad.yaml", &text),
            "{what}: voxflow check accepts what the schema rejects"
        );
    }
}
