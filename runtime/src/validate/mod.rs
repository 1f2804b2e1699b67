//! Turns a parsed graph into a checked plan, reporting every problem at once.

use crate::decl::{check_value, did_you_mean, ParamType, Params};
use crate::graph::{Diagnostic, Diagnostics, GraphDoc, NodeSpec, Pos, INCLUDE_KEYS};
use crate::registry::Registry;
use petgraph::graph::DiGraph;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

mod subst;

pub use subst::{has_scheme, parse_set_value, strip_extension};
use subst::{param_ref, resolve_path, scope_file, substitute, substitute_paths, Origin, Sub};

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
    /// The graph files it includes, directly or not, each once.
    pub includes: Vec<PathBuf>,
    pub nodes: Vec<PlanNode>,
    /// Ids of nodes switched off (directly or because an input was switched off).
    pub disabled: Vec<String>,
    /// Graph param values used for this plan.
    pub params: BTreeMap<String, Value>,
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

    /// An error about no node, in the file of `scope`.
    fn err_at(&mut self, scope: usize, pos: Pos, message: String) {
        self.errors.push(Diagnostic {
            file: scope_file(self.doc, scope),
            pos,
            node: None,
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
                    Ok(Sub::Known(v, o)) => Sub::Known(v, o.passed_from(caller.scope)),
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

    // Graph inputs: each names, in the included graph, the node the include node connects it to.
    // A graph with inputs runs only as a part of another graph.
    let mut input_srcs: Vec<HashMap<String, Option<Source>>> =
        vec![HashMap::new(); doc.scopes.len()];
    if let Some(first) = doc.inputs.first() {
        let names: Vec<String> = doc.inputs.iter().map(|i| format!("`{}`", i.name)).collect();
        c.err_at(
            0,
            first.pos,
            format!(
                "this graph has inputs ({}): it is a part that other graphs include (`kind: graph`, docs/GRAPHS.md) and cannot run by itself",
                names.join(", ")
            ),
        );
    }
    for input in &doc.inputs {
        input_srcs[0].insert(input.name.clone(), None);
    }
    for (k, scope) in doc.scopes.iter().enumerate().skip(1) {
        let caller = scope.caller.as_ref().expect("included scope");
        for input in &scope.inputs {
            let name = input.name.as_str();
            let clash = index.contains_key(format!("{}{name}", scope.prefix).as_str())
                || includes.contains(&(k, name));
            if clash || name.contains(['.', '/']) || INCLUDE_KEYS.contains(&name) {
                c.err_at(
                    k,
                    input.pos,
                    format!("graph input `{name}`: the name of a node, a reserved key (kind, file, about, enabled) or a name with `.` or `/`"),
                );
            }
        }
        for e in &caller.ports {
            let found = match e.value.as_str() {
                Some(r) => match source_of(r, caller.scope, doc, &index, &includes, &input_srcs) {
                    Ok(s) => s,
                    Err(m) => {
                        c.err_in(
                            caller.scope,
                            e.value_pos,
                            &caller.id,
                            format!("input `{}`: {m}", e.key),
                        );
                        None
                    }
                },
                None => {
                    c.err_in(
                        caller.scope,
                        e.value_pos,
                        &caller.id,
                        format!("input `{}` must name a node (`node` or `node.port`)", e.key),
                    );
                    None
                }
            };
            input_srcs[k].insert(e.key.clone(), found);
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
                        match source_of(r, spec.scope, doc, &index, &includes, &input_srcs) {
                            Ok(Some((s, p))) => st.inputs[port] = Some((s, p, e.value_pos)),
                            Ok(None) => {}
                            Err(m) => c.err(e.value_pos, Some(id), format!("input `{key}`: {m}")),
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
            if !p.optional && st.inputs[n].is_none() && spec.entry(&p.name).is_none() {
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
    let mut includes: Vec<PathBuf> = Vec::new();
    for s in doc.scopes.iter().skip(1) {
        if !includes.contains(&s.file) {
            includes.push(s.file.clone());
        }
    }
    Ok(Plan {
        graph: doc.name.clone(),
        file: doc.file.clone(),
        includes,
        nodes,
        disabled,
        params: values,
    })
}

/// A node and, if named, its output port.
type Source = (usize, Option<String>);

/// What a reference written in the file of `scope` names: `node`, `node.port`,
/// `include.NODE[.port]` or one of the file's graph inputs. `None`: an input whose source was
/// already reported as wrong.
fn source_of(
    r: &str,
    scope: usize,
    doc: &GraphDoc,
    index: &HashMap<&str, usize>,
    includes: &[(usize, &str)],
    input_srcs: &[HashMap<String, Option<Source>>],
) -> Result<Option<Source>, String> {
    let (mut src, mut src_port) = match r.split_once('.') {
        Some((a, b)) => (a.to_string(), Some(b.to_string())),
        None => (r.to_string(), None),
    };
    if let Some(found) = input_srcs.get(scope).and_then(|m| m.get(&src)) {
        return match src_port {
            Some(p) => Err(format!(
                "`{src}` is an input of this graph, one stream: write `{src}` without `.{p}`"
            )),
            None => Ok(found.clone()),
        };
    }
    // `seg.NODE[.port]`: node NODE of the graph included as `seg`.
    if includes.contains(&(scope, src.as_str())) {
        let Some(inner) = src_port.take() else {
            return Err(format!(
                "`{src}` is an included graph; name one of its nodes as `{src}.NODE`"
            ));
        };
        let (node, port) = match inner.split_once('.') {
            Some((a, b)) => (a.to_string(), Some(b.to_string())),
            None => (inner, None),
        };
        src = format!("{src}/{node}");
        src_port = port;
    }
    let prefix = doc.scopes.get(scope).map_or("", |s| s.prefix.as_str());
    let src = format!("{prefix}{src}");
    match index.get(src.as_str()) {
        Some(&s) => Ok(Some((s, src_port))),
        None => Err(format!(
            "no node named `{src}`{}",
            did_you_mean(
                &src,
                doc.nodes
                    .iter()
                    .filter(|n| n.scope == scope)
                    .map(|n| n.id.as_str())
            )
        )),
    }
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
