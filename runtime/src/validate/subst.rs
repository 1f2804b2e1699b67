//! `$param` substitution in a graph's values and resolution of relative paths by where each
//! value was written (graph file, included file, command line).

use super::CheckOptions;
use crate::decl::did_you_mean;
use crate::graph::GraphDoc;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where a value came from; decides what relative paths are relative to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// Written in the file of the node being checked.
    Graph,
    /// Written in the file of this scope (a value passed to an included graph).
    File(usize),
    CommandLine,
    /// A list whose items came from different places: one origin per item.
    Items(Vec<Origin>),
}

impl Origin {
    /// The origin of a value that the file of `scope` passes to a graph it includes.
    pub(super) fn passed_from(self, scope: usize) -> Origin {
        match self {
            Origin::Graph => Origin::File(scope),
            Origin::Items(items) => {
                Origin::Items(items.into_iter().map(|o| o.passed_from(scope)).collect())
            }
            other => other,
        }
    }
}

#[derive(Clone, Debug)]
pub(super) enum Sub {
    Known(Value, Origin),
    /// A graph param without a value (allowed by `check`, an error for `run`).
    Unknown,
}

/// Parses a `--set` value the way YAML would read a scalar.
pub fn parse_set_value(s: &str) -> Value {
    match s {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => {
            if let Ok(i) = s.parse::<i64>() {
                Value::from(i)
            } else if let Ok(f) = s.parse::<f64>() {
                if f.is_finite() {
                    Value::from(f)
                } else {
                    Value::String(s.into())
                }
            } else {
                Value::String(s.into())
            }
        }
    }
}

/// True for values such as `demo:` or `demo:small` (a scheme, then anything) that are not file
/// paths.
pub fn has_scheme(s: &str) -> bool {
    match s.find(':') {
        Some(i) if i >= 2 => s[..i]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_'),
        _ => false,
    }
}

/// Replaces `$name` / `${name}` in a value.
pub(super) fn substitute(v: &Value, gp: &HashMap<String, Sub>) -> Result<Sub, String> {
    match v {
        Value::String(s) => substitute_str(s, gp),
        Value::Array(items) => {
            let mut out = Vec::new();
            let mut origins = Vec::new();
            for it in items {
                match substitute(it, gp)? {
                    Sub::Known(v, o) => {
                        out.push(v);
                        origins.push(o);
                    }
                    Sub::Unknown => return Ok(Sub::Unknown),
                }
            }
            let origin = match origins.first() {
                Some(o) if origins.iter().all(|x| x == o) => o.clone(),
                Some(_) => Origin::Items(origins),
                None => Origin::Graph,
            };
            Ok(Sub::Known(Value::Array(out), origin))
        }
        _ => Ok(Sub::Known(v.clone(), Origin::Graph)),
    }
}

/// A `$name`, `${name}` or `${name:modifier}` reference; `s` starts after the `$`.
pub(super) struct ParamRef {
    pub name: String,
    pub modifier: Option<String>,
    /// Length of the reference in `s`.
    pub len: usize,
}

pub(super) fn param_ref(s: &str) -> Option<ParamRef> {
    if let Some(rest) = s.strip_prefix('{') {
        let end = rest.find('}')?;
        let (name, modifier) = match rest[..end].split_once(':') {
            Some((n, m)) => (n.to_string(), Some(m.to_string())),
            None => (rest[..end].to_string(), None),
        };
        return Some(ParamRef {
            name,
            modifier,
            len: end + 2,
        });
    }
    let n: String = s
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if n.is_empty() {
        return None;
    }
    Some(ParamRef {
        len: n.len(),
        name: n,
        modifier: None,
    })
}

/// Compression suffixes: `stem` drops the extension before them too.
const COMPRESSED: [&str; 4] = [".gz", ".bz2", ".xz", ".zst"];

/// `path` without the extension of its file name, two for a compressed file
/// (`a/data.csv.gz` -> `a/data`).
pub fn strip_extension(path: &str) -> &str {
    let name_start = path.rfind('/').map_or(0, |i| i + 1);
    let mut end = path.len();
    for _ in 0..2 {
        let name = &path[name_start..end];
        match name.rfind('.') {
            Some(dot) if dot > 0 => {
                let ext = &name[dot..];
                end = name_start + dot;
                if !COMPRESSED.contains(&ext) {
                    break;
                }
            }
            _ => break,
        }
    }
    &path[..end]
}

/// Applies `${name:modifier}`: `stem` drops the file extension, `set` is true unless the
/// value is an empty string.
fn apply_modifier(name: &str, v: &Value, modifier: Option<&str>) -> Result<Value, String> {
    match (modifier, v) {
        (None, _) => Ok(v.clone()),
        (Some("set"), Value::String(s)) => Ok(Value::Bool(!s.is_empty())),
        (Some("set"), _) => Ok(Value::Bool(!v.is_null())),
        (Some("stem"), Value::String(s)) => Ok(Value::String(strip_extension(s).into())),
        (Some("stem"), _) => Err(format!(
            "`${{{name}:stem}}` needs a text value, `{name}` is {v}"
        )),
        (Some(m), _) => Err(format!(
            "unknown modifier `{m}` in `${{{name}:{m}}}` (known: stem, set)"
        )),
    }
}

fn lookup<'g>(gp: &'g HashMap<String, Sub>, name: &str) -> Result<&'g Sub, String> {
    gp.get(name).ok_or_else(|| {
        format!(
            "graph param `${name}` is never defined{}",
            did_you_mean(name, gp.keys().map(String::as_str))
        )
    })
}

fn substitute_str(s: &str, gp: &HashMap<String, Sub>) -> Result<Sub, String> {
    if !s.contains('$') {
        return Ok(Sub::Known(Value::String(s.into()), Origin::Graph));
    }
    // A whole-value reference keeps the param's type.
    if let Some(r) = param_ref(&s[1..]).filter(|_| s.starts_with('$')) {
        if r.len + 1 == s.len() {
            return match lookup(gp, &r.name)? {
                Sub::Known(v, o) => Ok(Sub::Known(
                    apply_modifier(&r.name, v, r.modifier.as_deref())?,
                    o.clone(),
                )),
                Sub::Unknown => Ok(Sub::Unknown),
            };
        }
    }
    let mut out = String::new();
    let mut origin = Origin::Graph;
    let mut rest = s;
    let mut first = true;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
            first = false;
            continue;
        }
        let r = param_ref(after).ok_or_else(|| {
            format!("`$` in `{s}` is not followed by a param name (write `$$` for a dollar sign)")
        })?;
        match lookup(gp, &r.name)? {
            Sub::Unknown => return Ok(Sub::Unknown),
            Sub::Known(v, o) => {
                // A path that starts with a param's value is relative to where that value was
                // written.
                if first && i == 0 {
                    origin = o.clone();
                }
                match apply_modifier(&r.name, v, r.modifier.as_deref())? {
                    Value::String(t) => out.push_str(&t),
                    other => out.push_str(&other.to_string()),
                }
            }
        }
        first = false;
        rest = &after[r.len..];
    }
    out.push_str(rest);
    Ok(Sub::Known(Value::String(out), origin))
}

/// Folder of the file of scope `k`.
fn scope_dir(doc: &GraphDoc, k: usize) -> &Path {
    doc.scopes.get(k).map_or(&doc.dir, |s| &s.dir)
}

/// A relative path resolved against the folder of the graph file it was written in (`scope`:
/// the file of the node) or the current directory.
pub(super) fn resolve_path(
    s: &str,
    origin: Origin,
    scope: usize,
    doc: &GraphDoc,
    opts: &CheckOptions,
) -> String {
    if has_scheme(s) || Path::new(s).is_absolute() {
        return s.to_string();
    }
    let base = match origin {
        Origin::Graph | Origin::Items(_) => scope_dir(doc, scope),
        Origin::File(k) => scope_dir(doc, k),
        Origin::CommandLine => &opts.cwd,
    };
    base.join(s).to_string_lossy().into_owned()
}

/// Substitutes a list of paths and resolves each by where it came from (the graph file or
/// `--set`), so `[$a, $b]` works when only `a` is set on the command line.
pub(super) fn substitute_paths(
    v: &Value,
    gp: &HashMap<String, Sub>,
    scope: usize,
    doc: &GraphDoc,
    opts: &CheckOptions,
) -> Result<Sub, String> {
    let items: Vec<(Value, Origin)> = match v {
        Value::Array(items) => {
            let mut out = Vec::new();
            for it in items {
                match substitute(it, gp)? {
                    Sub::Known(v, o) => out.push((v, o)),
                    Sub::Unknown => return Ok(Sub::Unknown),
                }
            }
            out
        }
        _ => match substitute(v, gp)? {
            Sub::Known(Value::Array(a), Origin::Items(os)) if os.len() == a.len() => {
                a.into_iter().zip(os).collect()
            }
            Sub::Known(Value::Array(a), o) => a.into_iter().map(|v| (v, o.clone())).collect(),
            other => return Ok(other),
        },
    };
    let resolved = items
        .into_iter()
        .map(|(v, o)| match v {
            Value::String(s) => Value::String(resolve_path(&s, o, scope, doc, opts)),
            other => other,
        })
        .collect();
    Ok(Sub::Known(Value::Array(resolved), Origin::Graph))
}

/// The file of scope `k`.
pub(super) fn scope_file(doc: &GraphDoc, k: usize) -> PathBuf {
    doc.scopes.get(k).map_or(&doc.file, |s| &s.file).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, Value, Origin)]) -> HashMap<String, Sub> {
        pairs
            .iter()
            .map(|(n, v, o)| (n.to_string(), Sub::Known(v.clone(), o.clone())))
            .collect()
    }

    fn known(s: Result<Sub, String>) -> (Value, Origin) {
        match s {
            Ok(Sub::Known(v, o)) => (v, o),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stem_drops_the_extension() {
        assert_eq!(strip_extension("out/seg.csv.gz"), "out/seg");
        assert_eq!(strip_extension("seg.csv"), "seg");
        assert_eq!(strip_extension("a/t.tar.zst"), "a/t");
        assert_eq!(strip_extension("a.b/seg"), "a.b/seg");
        assert_eq!(strip_extension("my.case.nrrd"), "my.case");
        assert_eq!(strip_extension("x/.hidden"), "x/.hidden");
        assert_eq!(strip_extension("scan.gz"), "scan");
    }

    #[test]
    fn modifiers() {
        let gp = params(&[
            ("output", Value::from("out/seg.csv.gz"), Origin::CommandLine),
            ("truth", Value::from(""), Origin::Graph),
            ("n", Value::from(3), Origin::Graph),
        ]);
        // Text around a modified reference keeps the command-line origin of the value.
        let (v, o) = known(substitute_str("${output:stem}.html", &gp));
        assert_eq!((v, o), (Value::from("out/seg.html"), Origin::CommandLine));
        let (v, _) = known(substitute_str("${output:stem}", &gp));
        assert_eq!(v, Value::from("out/seg"));
        assert_eq!(
            known(substitute_str("${truth:set}", &gp)).0,
            Value::Bool(false)
        );
        assert_eq!(
            known(substitute_str("${output:set}", &gp)).0,
            Value::Bool(true)
        );
        let e = substitute_str("${output:upper}", &gp).unwrap_err();
        assert!(e.contains("unknown modifier `upper`"), "{e}");
        let e = substitute_str("${n:stem}.x", &gp).unwrap_err();
        assert!(e.contains("needs a text value"), "{e}");
        let e = substitute_str("${outptu:stem}", &gp).unwrap_err();
        assert!(e.contains("did you mean `output`"), "{e}");
    }

    #[test]
    fn list_items_keep_where_each_was_written() {
        let gp = params(&[
            ("a", Value::from("m/a.onnx"), Origin::CommandLine),
            ("b", Value::from("../b.onnx"), Origin::Graph),
        ]);
        let list = Value::from(vec!["$a", "$b"]);
        let (v, o) = known(substitute(&list, &gp));
        assert_eq!(o, Origin::Items(vec![Origin::CommandLine, Origin::Graph]));
        // Passed by the graph file (scope 0) to an included graph, which uses it whole.
        let inner: HashMap<String, Sub> =
            [("models".to_string(), Sub::Known(v, o.passed_from(0)))].into();
        let doc = GraphDoc::parse("graph: g\nnodes: {}\n", Path::new("/g/x.yaml")).unwrap();
        let opts = CheckOptions {
            cwd: PathBuf::from("/cwd"),
            ..Default::default()
        };
        let (paths, _) = known(substitute_paths(
            &Value::from("$models"),
            &inner,
            1,
            &doc,
            &opts,
        ));
        assert_eq!(paths, Value::from(vec!["/cwd/m/a.onnx", "/g/../b.onnx"]));
        // A path that starts with a passed value is relative to where the value was written.
        let out = params(&[("output", Value::from("o/seg.csv.gz"), Origin::File(0))]);
        let (v, o) = known(substitute_str("${output:stem}.html", &out));
        assert_eq!((v, o), (Value::from("o/seg.html"), Origin::File(0)));
    }
}
