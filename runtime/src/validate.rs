//! Turns a parsed graph into a checked plan, reporting every problem at once.

use crate::decl::{check_value, did_you_mean, ParamType, Params};
use crate::graph::{Diagnostic, Diagnostics, GraphDoc, NodeSpec, Pos};
use crate::registry::Registry;
use petgraph::graph::DiGraph;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Keys every node may have besides its ports and params.
pub const RESERVED_KEYS: [&str; 3] = ["kind", "about", "enabled"];

/// A node ready to run.
#[derive(Clone, Debug)]
pub struct PlanNode {
    pub id: String,
    /// The graph file it is written in (an included file for `seg/...` ids).
    pub file: PathBuf,
    pub kind: String,
    pub pos: Pos,
    pub params: Params,
    /// Per declared input port: the producing plan node and its output port.
    pub inputs: Vec<Option<(usize, usize)>>,
}

/// A checked graph: only enabled nodes, params substituted, paths resolved.
#[derive(Clone, Debug)]
pub struct Plan {
    pub graph: String,
    pub file: PathBuf,
    pub nodes: Vec<PlanNode>,
    /// Ids of nodes switched off (directly or because an input was switched off).
    pub disabled: Vec<String>,
    /// Graph param values used for this plan.
    pub params: BTreeMap<String, Value>,
}

/// Where a value came from; decides what relative paths are relative to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// Written in the file of the node being checked.
    Graph,
    /// Written in the file of this scope (a value passed to an included graph).
    File(usize),
    CommandLine,
}

#[derive(Clone, Debug)]
enum Sub {
    Known(Value, Origin),
    /// A graph param without a value (allowed by `check`, an error for `run`).
    Unknown,
}

/// Options of a check.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// `--set name=value` overrides, values already parsed.
    pub set: Vec<(String, Value)>,
    /// Folder that command-line paths resolve against.
    pub cwd: PathBuf,
    /// When true, graph params without a value are errors (running); else they are skipped.
    pub require_values: bool,
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

/// True for values such as `phantom:` or `phantom:small` that are not file paths.
pub fn has_scheme(s: &str) -> bool {
    match s.find(':') {
        Some(i) if i >= 2 => s[..i]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_'),
        _ => false,
    }
}

struct Checker<'a> {
    doc: &'a GraphDoc,
    errors: Vec<Diagnostic>,
    /// File of each node, for nodes of included graphs.
    files: HashMap<&'a str, &'a Path>,
}

impl Checker<'_> {
    /// An error about include node `node` written in the file of `scope`.
    fn err_in(&mut self, scope: usize, pos: Pos, node: &str, message: String) {
        self.errors.push(Diagnostic {
            file: scope_file(self.doc, scope),
            pos,
            node: Some(node.into()),
            message,
        });
    }

    fn err(&mut self, pos: Pos, node: Option<&str>, message: String) {
        let file = node
            .and_then(|n| self.files.get(n).copied())
            .unwrap_or(&self.doc.file);
        self.errors.push(Diagnostic {
            file: file.to_path_buf(),
            pos,
            node: node.map(String::from),
            message,
        });
    }
}

/// Replaces `$name` / `${name}` in a value.
fn substitute(v: &Value, gp: &HashMap<String, Sub>) -> Result<Sub, String> {
    match v {
        Value::String(s) => substitute_str(s, gp),
        Value::Array(items) => {
            let mut out = Vec::new();
            let mut origin = Origin::Graph;
            for it in items {
                match substitute(it, gp)? {
                    Sub::Known(v, o) => {
                        if o == Origin::CommandLine {
                            origin = o;
                        }
                        out.push(v)
                    }
                    Sub::Unknown => return Ok(Sub::Unknown),
                }
            }
            Ok(Sub::Known(Value::Array(out), origin))
        }
        _ => Ok(Sub::Known(v.clone(), Origin::Graph)),
    }
}

/// A `$name`, `${name}` or `${name:modifier}` reference; `s` starts after the `$`.
struct ParamRef {
    name: String,
    modifier: Option<String>,
    /// Length of the reference in `s`.
    len: usize,
}

fn param_ref(s: &str) -> Option<ParamRef> {
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

/// `path` without the extension of its file name (two for `.gz`: `a/seg.nii.gz` -> `a/seg`).
pub fn strip_extension(path: &str) -> &str {
    let name_start = path.rfind('/').map_or(0, |i| i + 1);
    let mut end = path.len();
    for _ in 0..2 {
        let name = &path[name_start..end];
        match name.rfind('.') {
            Some(dot) if dot > 0 => {
                let ext = &name[dot..];
                end = name_start + dot;
                if ext != ".gz" {
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
                    *o,
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
                if first && i == 0 && *o == Origin::CommandLine {
                    origin = Origin::CommandLine;
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
fn resolve_path(
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
        Origin::Graph => scope_dir(doc, scope),
        Origin::File(k) => scope_dir(doc, k),
        Origin::CommandLine => &opts.cwd,
    };
    base.join(s).to_string_lossy().into_owned()
}

/// Substitutes a list of paths and resolves each by where it came from (the graph file or
/// `--set`), so `[$a, $b]` works when only `a` is set on the command line.
fn substitute_paths(
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
            Sub::Known(Value::Array(a), o) => a.into_iter().map(|v| (v, o)).collect(),
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
fn scope_file(doc: &GraphDoc, k: usize) -> PathBuf {
    doc.scopes.get(k).map_or(&doc.file, |s| &s.file).clone()
}

/// Checks a graph against the registry; on success returns the plan of enabled nodes.
pub fn check(doc: &GraphDoc, reg: &Registry, opts: &CheckOptions) -> Result<Plan, Diagnostics> {
    let mut c = Checker {
        doc,
        errors: vec![],
        files: doc
            .nodes
            .iter()
            .filter_map(|n| Some((n.id.as_str(), doc.scopes.get(n.scope)?.file.as_path())))
            .collect(),
    };

    // Graph params.
    let mut gp: HashMap<String, Sub> = HashMap::new();
    let mut values = BTreeMap::new();
    for p in &doc.params {
        let set = opts.set.iter().rev().find(|(n, _)| *n == p.name);
        let sub = match (set, &p.default) {
            (Some((_, v)), _) => Sub::Known(v.clone(), Origin::CommandLine),
            (None, Some(v)) => Sub::Known(v.clone(), Origin::Graph),
            (None, None) => {
                if opts.require_values {
                    c.err(
                        p.pos,
                        None,
                        format!(
                            "graph param `{}` has no default; give it with --set {}=VALUE",
                            p.name, p.name
                        ),
                    );
                }
                Sub::Unknown
            }
        };
        if let Sub::Known(v, _) = &sub {
            values.insert(p.name.clone(), v.clone());
        }
        gp.insert(p.name.clone(), sub);
    }
    for (name, _) in &opts.set {
        if !gp.contains_key(name) {
            let msg = format!(
                "--set {name}: the graph has no param `{name}`{}",
                did_you_mean(name, doc.params.iter().map(|p| p.name.as_str()))
            );
            c.err(Pos { line: 1, column: 1 }, None, msg);
        }
    }

    // Params of included graphs: the caller's values (in the caller's params), else defaults;
    // an include switched off switches off every node of its graph.
    let mut gps = vec![gp];
    let mut scope_on = vec![true];
    for (k, scope) in doc.scopes.iter().enumerate().skip(1) {
        let caller = scope.caller.as_ref().expect("included scope");
        let mut inner: HashMap<String, Sub> = HashMap::new();
        for p in &scope.params {
            let sub = match caller.args.iter().find(|a| a.key == p.name) {
                Some(a) => match substitute(&a.value, &gps[caller.scope]) {
                    Ok(Sub::Known(v, Origin::Graph)) => Sub::Known(v, Origin::File(caller.scope)),
                    Ok(other) => other,
                    Err(m) => {
                        c.err_in(
                            caller.scope,
                            a.value_pos,
                            &caller.id,
                            format!("param `{}`: {m}", p.name),
                        );
                        Sub::Unknown
                    }
                },
                None => {
                    match &p.default {
                        Some(v) => Sub::Known(v.clone(), Origin::File(k)),
                        None => {
                            if opts.require_values {
                                c.err_in(
                                caller.scope,
                                caller.pos,
                                &caller.id,
                                format!("the included graph's param `{}` has no default; set it here", p.name),
                            );
                            }
                            Sub::Unknown
                        }
                    }
                }
            };
            inner.insert(p.name.clone(), sub);
        }
        let mut on = scope_on[caller.scope];
        if let Some(e) = &caller.enabled {
            match substitute(&e.value, &gps[caller.scope]) {
                Ok(Sub::Known(Value::Bool(b), _)) => on &= b,
                Ok(Sub::Known(v, _)) => c.err_in(
                    caller.scope,
                    e.value_pos,
                    &caller.id,
                    format!("`enabled` must be true or false, got {v}"),
                ),
                Ok(Sub::Unknown) => {}
                Err(m) => c.err_in(caller.scope, e.value_pos, &caller.id, m),
            }
        }
        gps.push(inner);
        scope_on.push(on);
    }
    let no_params = HashMap::new();
    let gp_of = |k: usize| gps.get(k).unwrap_or(&no_params);
    let prefix_of = |k: usize| doc.scopes.get(k).map_or("", |s| s.prefix.as_str());
    // Include nodes by (scope, id), for `include.NODE` references.
    let includes: Vec<(usize, &str)> = doc
        .scopes
        .iter()
        .filter_map(|s| s.caller.as_ref().map(|c| (c.scope, c.id.as_str())))
        .collect();

    // Node ids.
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (n, spec) in doc.nodes.iter().enumerate() {
        if index.insert(spec.id.as_str(), n).is_some() {
            c.err(spec.pos, Some(&spec.id), "node id is used twice".into());
        }
        if spec.id[prefix_of(spec.scope).len()..].contains('.') {
            c.err(
                spec.pos,
                Some(&spec.id),
                "node ids may not contain `.`".into(),
            );
        }
    }

    struct NodeState<'d> {
        spec: &'d NodeSpec,
        kind: Option<String>,
        params: Params,
        /// Per input port: (source node, source port name or None, entry position).
        inputs: Vec<Option<(usize, Option<String>, Pos)>>,
        enabled: bool,
    }
    let mut states: Vec<NodeState> = Vec::new();
    for spec in &doc.nodes {
        let id = spec.id.as_str();
        let gp = gp_of(spec.scope);
        let prefix = prefix_of(spec.scope);
        let mut st = NodeState {
            spec,
            kind: None,
            params: Params::default(),
            inputs: vec![],
            enabled: scope_on.get(spec.scope).copied().unwrap_or(true),
        };
        let Some(kind_entry) = spec.entry("kind") else {
            c.err(spec.pos, Some(id), "missing `kind`".into());
            states.push(st);
            continue;
        };
        let Some(kind_name) = kind_entry.value.as_str() else {
            c.err(
                kind_entry.value_pos,
                Some(id),
                "`kind` must be a string".into(),
            );
            states.push(st);
            continue;
        };
        let Some(entry) = reg.get(kind_name) else {
            c.err(
                kind_entry.value_pos,
                Some(id),
                format!(
                    "unknown node kind `{kind_name}`{}",
                    did_you_mean(kind_name, reg.names())
                ),
            );
            states.push(st);
            continue;
        };
        let decl = &entry.decl;
        st.kind = Some(kind_name.to_string());
        st.inputs = vec![None; decl.inputs.len()];
        let mut raw_params: BTreeMap<String, (Value, Origin, Pos)> = BTreeMap::new();
        let mut unknown_params: Vec<String> = Vec::new();
        for e in &spec.entries {
            match e.key.as_str() {
                "kind" | "about" => {}
                "enabled" => match substitute(&e.value, gp) {
                    Ok(Sub::Known(Value::Bool(b), _)) => st.enabled &= b,
                    Ok(Sub::Known(v, _)) => c.err(
                        e.value_pos,
                        Some(id),
                        format!("`enabled` must be true or false, got {v}"),
                    ),
                    Ok(Sub::Unknown) => {}
                    Err(m) => c.err(e.value_pos, Some(id), m),
                },
                key => {
                    if let Some(port) = decl.input_index(key) {
                        let Some(r) = e.value.as_str() else {
                            c.err(e.value_pos, Some(id), format!("input `{key}` must name an upstream node (`node` or `node.port`)"));
                            continue;
                        };
                        let (mut src, mut src_port) = match r.split_once('.') {
                            Some((a, b)) => (a.to_string(), Some(b.to_string())),
                            None => (r.to_string(), None),
                        };
                        // `seg.NODE[.port]`: node NODE of the graph included as `seg`.
                        if includes.contains(&(spec.scope, src.as_str())) {
                            let Some(inner) = src_port.take() else {
                                c.err(e.value_pos, Some(id), format!("input `{key}`: `{src}` is an included graph; name one of its nodes as `{src}.NODE`"));
                                continue;
                            };
                            let (node, port) = match inner.split_once('.') {
                                Some((a, b)) => (a.to_string(), Some(b.to_string())),
                                None => (inner, None),
                            };
                            src = format!("{src}/{node}");
                            src_port = port;
                        }
                        let src = format!("{prefix}{src}");
                        let src = src.as_str();
                        match index.get(src) {
                            Some(&s) => st.inputs[port] = Some((s, src_port, e.value_pos)),
                            None => c.err(
                                e.value_pos,
                                Some(id),
                                format!(
                                    "input `{key}`: no node named `{src}`{}",
                                    did_you_mean(
                                        src,
                                        doc.nodes
                                            .iter()
                                            .filter(|n| n.scope == spec.scope)
                                            .map(|n| n.id.as_str())
                                    )
                                ),
                            ),
                        }
                    } else if let Some(pd) = decl.param_decl(key) {
                        let sub = if pd.ty == ParamType::PathList {
                            substitute_paths(&e.value, gp, spec.scope, doc, opts)
                        } else {
                            substitute(&e.value, gp)
                        };
                        match sub {
                            Ok(Sub::Known(v, o)) => match check_value(&pd.ty, &v) {
                                Ok(v) => {
                                    raw_params.insert(key.to_string(), (v, o, e.value_pos));
                                }
                                Err(m) => {
                                    c.err(e.value_pos, Some(id), format!("param `{key}`: {m}"))
                                }
                            },
                            Ok(Sub::Unknown) => unknown_params.push(key.to_string()),
                            Err(m) => c.err(e.value_pos, Some(id), format!("param `{key}`: {m}")),
                        }
                    } else {
                        let names = decl
                            .inputs
                            .iter()
                            .map(|p| p.name.as_str())
                            .chain(decl.params.iter().map(|p| p.name.as_str()))
                            .chain(RESERVED_KEYS);
                        c.err(
                            e.key_pos,
                            Some(id),
                            format!(
                                "`{kind_name}` has no input or param `{key}`{}",
                                did_you_mean(key, names)
                            ),
                        );
                    }
                }
            }
        }
        for pd in &decl.params {
            match raw_params.remove(&pd.name) {
                Some((v, origin, _)) => {
                    let v = match (&pd.ty, v) {
                        (ParamType::Path, Value::String(s)) => {
                            Value::String(resolve_path(&s, origin, spec.scope, doc, opts))
                        }
                        (_, v) => v,
                    };
                    st.params.values.insert(pd.name.clone(), v);
                }
                None if unknown_params.contains(&pd.name) => {}
                None => match &pd.default {
                    Some(d) => {
                        st.params.values.insert(pd.name.clone(), d.clone());
                    }
                    None if pd.required => c.err(
                        spec.pos,
                        Some(id),
                        format!("missing param `{}` ({})", pd.name, pd.about),
                    ),
                    None => {}
                },
            }
        }
        for (n, p) in decl.inputs.iter().enumerate() {
            if !p.optional && st.inputs[n].is_none() {
                c.err(
                    spec.pos,
                    Some(id),
                    format!("input `{}` is not connected", p.name),
                );
            }
        }
        if unknown_params.is_empty() {
            for (param, msg) in entry.kind.check(&st.params) {
                match spec.entry(&param) {
                    Some(e) => c.err(e.value_pos, Some(id), format!("param `{param}`: {msg}")),
                    None if param.is_empty() => c.err(spec.pos, Some(id), msg),
                    None => c.err(spec.pos, Some(id), format!("param `{param}`: {msg}")),
                }
            }
        }
        states.push(st);
    }

    // Ports and stream types of edges.
    let mut resolved: Vec<Vec<Option<(usize, usize)>>> = Vec::new();
    for st in &states {
        let mut ins = Vec::new();
        for (port, input) in st.inputs.iter().enumerate() {
            let Some((src, src_port, pos)) = input else {
                ins.push(None);
                continue;
            };
            let dst_decl = &reg
                .get(st.kind.as_deref().unwrap_or_default())
                .expect("kind known")
                .decl;
            let src_state = &states[*src];
            let Some(src_kind) = src_state.kind.as_deref() else {
                ins.push(None);
                continue;
            };
            let src_decl = &reg.get(src_kind).expect("kind known").decl;
            let out = match src_port {
                None if src_decl.outputs.is_empty() => {
                    c.err(
                        *pos,
                        Some(&st.spec.id),
                        format!("`{}` ({src_kind}) has no outputs", src_state.spec.id),
                    );
                    ins.push(None);
                    continue;
                }
                None => 0,
                Some(name) => match src_decl.output_index(name) {
                    Some(i) => i,
                    None => {
                        c.err(
                            *pos,
                            Some(&st.spec.id),
                            format!(
                                "`{}` ({src_kind}) has no output `{name}`{}; its outputs: {}",
                                src_state.spec.id,
                                did_you_mean(
                                    name,
                                    src_decl.outputs.iter().map(|p| p.name.as_str())
                                ),
                                src_decl
                                    .outputs
                                    .iter()
                                    .map(|p| p.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                        ins.push(None);
                        continue;
                    }
                },
            };
            let have = src_decl.output_type(out, &src_state.params);
            let want = dst_decl.input_type(port, &st.params);
            if let (Some(h), Some(w)) = (have, want) {
                if h != w {
                    c.err(
                        *pos,
                        Some(&st.spec.id),
                        format!(
                            "input `{}` needs a {w} stream but `{}` gives {h}",
                            dst_decl.inputs[port].name, src_state.spec.id
                        ),
                    );
                }
            }
            ins.push(Some((*src, out)));
        }
        resolved.push(ins);
    }

    // Cycles.
    let mut g = DiGraph::<usize, ()>::new();
    let ids: Vec<_> = (0..states.len()).map(|n| g.add_node(n)).collect();
    for (dst, ins) in resolved.iter().enumerate() {
        for (src, _) in ins.iter().flatten() {
            g.add_edge(ids[*src], ids[dst], ());
        }
    }
    for scc in petgraph::algo::tarjan_scc(&g) {
        let cyclic = scc.len() > 1 || scc.iter().any(|n| g.contains_edge(*n, *n));
        if cyclic {
            let mut names: Vec<&str> = scc.iter().map(|n| states[g[*n]].spec.id.as_str()).collect();
            names.sort();
            let first = &states[scc.iter().map(|n| g[*n]).min().expect("non-empty")];
            c.err(
                first.spec.pos,
                Some(&first.spec.id),
                format!("cycle through nodes {}", names.join(", ")),
            );
        }
    }

    if !c.errors.is_empty() {
        c.errors.sort_by_key(|d| (d.pos.line, d.pos.column));
        c.errors.dedup();
        return Err(Diagnostics(c.errors));
    }

    // Switch off nodes whose required inputs are switched off, and nodes whose every consumer
    // is switched off (their output would go nowhere; e.g. a truth reader when no report is made).
    let mut enabled: Vec<bool> = states.iter().map(|s| s.enabled).collect();
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); states.len()];
    for (n, ins) in resolved.iter().enumerate() {
        for (src, _) in ins.iter().flatten() {
            consumers[*src].push(n);
        }
    }
    loop {
        let mut changed = false;
        for n in 0..states.len() {
            if enabled[n] && !consumers[n].is_empty() && consumers[n].iter().all(|&c| !enabled[c]) {
                enabled[n] = false;
                changed = true;
            }
        }
        for (n, st) in states.iter().enumerate() {
            if !enabled[n] {
                continue;
            }
            let decl = &reg
                .get(st.kind.as_deref().expect("checked"))
                .expect("kind")
                .decl;
            for (port, input) in resolved[n].iter().enumerate() {
                if let Some((src, _)) = input {
                    if !enabled[*src] && !decl.inputs[port].optional {
                        enabled[n] = false;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut new_index = vec![usize::MAX; states.len()];
    let mut nodes = Vec::new();
    let mut disabled = Vec::new();
    for (n, st) in states.iter().enumerate() {
        if !enabled[n] {
            disabled.push(st.spec.id.clone());
            continue;
        }
        new_index[n] = nodes.len();
        nodes.push(PlanNode {
            id: st.spec.id.clone(),
            file: scope_file(doc, st.spec.scope),
            kind: st.kind.clone().expect("checked"),
            pos: st.spec.pos,
            params: st.params.clone(),
            inputs: vec![],
        });
    }
    for (n, ins) in resolved.iter().enumerate() {
        if enabled[n] {
            nodes[new_index[n]].inputs = ins
                .iter()
                .map(|i| i.and_then(|(s, p)| enabled[s].then(|| (new_index[s], p))))
                .collect();
        }
    }
    Ok(Plan {
        graph: doc.name.clone(),
        file: doc.file.clone(),
        nodes,
        disabled,
        params: values,
    })
}

/// `check` with the given settings and again with each boolean param that switches nodes
/// on or off flipped, so both ways of the graph are validated.
pub fn check_all_ways(
    doc: &GraphDoc,
    reg: &Registry,
    opts: &CheckOptions,
) -> Result<Plan, Diagnostics> {
    let plan = check(doc, reg, opts)?;
    let mut errors = Vec::new();
    // `enabled: $b` (a bool param) or `enabled: ${p:set}` (any param), in the graph file itself
    // (including a graph's include node).
    let mut switches: Vec<(String, bool)> = doc
        .nodes
        .iter()
        .filter(|n| n.scope == 0)
        .filter_map(|n| n.entry("enabled"))
        .chain(
            doc.scopes
                .iter()
                .filter_map(|s| s.caller.as_ref())
                .filter(|c| c.scope == 0)
                .filter_map(|c| c.enabled.as_ref()),
        )
        .filter_map(|e| e.value.as_str())
        .filter_map(|s| s.strip_prefix('$'))
        .filter_map(|s| param_ref(s).filter(|r| r.len == s.len()))
        .map(|r| (r.name, r.modifier.as_deref() == Some("set")))
        .collect();
    switches.sort();
    switches.dedup();
    for (name, is_set) in switches {
        let flipped = match (plan.params.get(&name), is_set) {
            (Some(Value::Bool(b)), false) => Value::Bool(!b),
            (Some(Value::String(s)), true) if s.is_empty() => Value::String(format!("<{name}>")),
            (Some(_), true) => Value::String(String::new()),
            _ => continue,
        };
        let mut o = opts.clone();
        o.set.push((name.clone(), flipped.clone()));
        if let Err(d) = check(doc, reg, &o) {
            for mut e in d.0 {
                e.message = format!("{} (with {name} = {flipped})", e.message);
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(Diagnostics(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, Value, Origin)]) -> HashMap<String, Sub> {
        pairs
            .iter()
            .map(|(n, v, o)| (n.to_string(), Sub::Known(v.clone(), *o)))
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
        assert_eq!(strip_extension("out/seg.nii.gz"), "out/seg");
        assert_eq!(strip_extension("seg.nii"), "seg");
        assert_eq!(strip_extension("a.b/seg"), "a.b/seg");
        assert_eq!(strip_extension("my.case.nrrd"), "my.case");
        assert_eq!(strip_extension("x/.hidden"), "x/.hidden");
        assert_eq!(strip_extension("scan.gz"), "scan");
    }

    #[test]
    fn modifiers() {
        let gp = params(&[
            ("output", Value::from("out/seg.nii.gz"), Origin::CommandLine),
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
}
