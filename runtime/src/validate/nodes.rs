//! One node: its kind, its params (substituted, typed, paths resolved) and its input references.

use super::refs::Refs;
use super::subst::{resolve_path, substitute, substitute_paths, Origin, Sub};
use super::{CheckOptions, Checker, RESERVED_KEYS};
use crate::decl::{check_value, did_you_mean, ParamType, Params};
use crate::graph::{NodeSpec, Pos};
use crate::registry::Registry;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

pub(super) struct NodeState<'d> {
    pub spec: &'d NodeSpec,
    pub kind: Option<String>,
    pub params: Params,
    /// Per input port: (source node, source port name or None, entry position).
    pub inputs: Vec<Option<(usize, Option<String>, Pos)>>,
    pub enabled: bool,
}

/// Checks one node; `gp`: the params of its file, `on`: whether its file is switched on.
pub(super) fn check_node<'d>(
    c: &mut Checker,
    spec: &'d NodeSpec,
    reg: &Registry,
    gp: &HashMap<String, Sub>,
    on: bool,
    refs: &Refs,
    opts: &CheckOptions,
) -> NodeState<'d> {
    let doc = c.doc;
    let id = spec.id.as_str();
    let mut st = NodeState {
        spec,
        kind: None,
        params: Params::default(),
        inputs: vec![],
        enabled: on,
    };
    let Some(kind_entry) = spec.entry("kind") else {
        c.err(spec.pos, Some(id), "missing `kind`".into());
        return st;
    };
    let Some(kind_name) = kind_entry.value.as_str() else {
        c.err(
            kind_entry.value_pos,
            Some(id),
            "`kind` must be a string".into(),
        );
        return st;
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
        return st;
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
                        c.err(
                            e.value_pos,
                            Some(id),
                            format!(
                                "input `{key}` must name an upstream node (`node` or `node.port`)"
                            ),
                        );
                        continue;
                    };
                    match refs.source_of(r, spec.scope, doc) {
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
                            Err(m) => c.err(e.value_pos, Some(id), format!("param `{key}`: {m}")),
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
    st
}
