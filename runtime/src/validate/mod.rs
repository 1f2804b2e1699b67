//! Turns a parsed graph into a checked plan, reporting every problem at once.

use crate::decl::Params;
use crate::graph::{Diagnostic, Diagnostics, GraphDoc, Pos};
use crate::registry::Registry;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

mod edges;
mod nodes;
mod refs;
mod scopes;
mod subst;

use edges::{cycles, port_types, switched_on};
use nodes::{check_node, NodeState};
use refs::Refs;
use scopes::{scope_params, ScopeParams};

pub use subst::{has_scheme, parse_set_value, strip_extension};
use subst::{param_ref, scope_file};

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
    let ScopeParams { gps, on, values } = scope_params(&mut c, opts);
    let refs = Refs::build(&mut c);
    let no_params = HashMap::new();
    let states: Vec<NodeState> = doc
        .nodes
        .iter()
        .map(|spec| {
            let gp = gps.get(spec.scope).unwrap_or(&no_params);
            let on = on.get(spec.scope).copied().unwrap_or(true);
            check_node(&mut c, spec, reg, gp, on, &refs, opts)
        })
        .collect();
    let resolved = port_types(&mut c, &states, reg);
    cycles(&mut c, &states, &resolved);
    if !c.errors.is_empty() {
        c.errors.sort_by_key(|d| (d.pos.line, d.pos.column));
        c.errors.dedup();
        return Err(Diagnostics(c.errors));
    }
    let enabled = switched_on(&states, &resolved, reg);
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
