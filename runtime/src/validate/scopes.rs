//! Graph params of the graph file and of each file it includes, and which includes are on.

use super::subst::{substitute, Origin, Sub};
use super::{CheckOptions, Checker};
use crate::decl::did_you_mean;
use crate::graph::Pos;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Per scope (the graph file first): param values and whether its nodes are switched on; and
/// the graph file's param values for the plan.
pub(super) struct ScopeParams {
    pub gps: Vec<HashMap<String, Sub>>,
    pub on: Vec<bool>,
    pub values: BTreeMap<String, Value>,
}

pub(super) fn scope_params(c: &mut Checker, opts: &CheckOptions) -> ScopeParams {
    let doc = c.doc;
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
    ScopeParams {
        gps,
        on: scope_on,
        values,
    }
}
