//! Node ids, and what a reference to a node, to a node of an included graph or to a graph
//! input names.

use super::Checker;
use crate::decl::did_you_mean;
use crate::graph::{GraphDoc, INCLUDE_KEYS};
use std::collections::HashMap;

/// A node and, if named, its output port.
pub(super) type Source = (usize, Option<String>);

pub(super) struct Refs<'d> {
    /// Node index by plan id.
    index: HashMap<&'d str, usize>,
    /// Include nodes by (scope, id), for `include.NODE` references.
    includes: Vec<(usize, &'d str)>,
    /// Per scope: the source of each of its graph inputs (`None`: reported as wrong).
    input_srcs: Vec<HashMap<String, Option<Source>>>,
}

impl<'d> Refs<'d> {
    /// Indexes the node ids and resolves every graph input, reporting duplicate ids, bad names
    /// and inputs that are wrongly connected.
    pub fn build(c: &mut Checker<'d>) -> Refs<'d> {
        let doc = c.doc;
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
        let mut refs = Refs {
            index,
            includes,
            input_srcs: vec![HashMap::new(); doc.scopes.len()],
        };
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
            refs.input_srcs[0].insert(input.name.clone(), None);
        }
        for (k, scope) in doc.scopes.iter().enumerate().skip(1) {
            let caller = scope.caller.as_ref().expect("included scope");
            for input in &scope.inputs {
                let name = input.name.as_str();
                let clash = refs
                    .index
                    .contains_key(format!("{}{name}", scope.prefix).as_str())
                    || refs.includes.contains(&(k, name));
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
                    Some(r) => match refs.source_of(r, caller.scope, doc) {
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
                refs.input_srcs[k].insert(e.key.clone(), found);
            }
        }
        refs
    }

    /// What a reference written in the file of `scope` names: `node`, `node.port`,
    /// `include.NODE[.port]` or one of the file's graph inputs. `None`: an input whose source
    /// was already reported as wrong.
    /// What a reference written in the file of `scope` names: `node`, `node.port`,
    /// `include.NODE[.port]` or one of the file's graph inputs. `None`: an input whose source was
    /// already reported as wrong.
    pub fn source_of(
        &self,
        r: &str,
        scope: usize,
        doc: &GraphDoc,
    ) -> Result<Option<Source>, String> {
        let (mut src, mut src_port) = match r.split_once('.') {
            Some((a, b)) => (a.to_string(), Some(b.to_string())),
            None => (r.to_string(), None),
        };
        if let Some(found) = self.input_srcs.get(scope).and_then(|m| m.get(&src)) {
            return match src_port {
                Some(p) => Err(format!(
                    "`{src}` is an input of this graph, one stream: write `{src}` without `.{p}`"
                )),
                None => Ok(found.clone()),
            };
        }
        // `seg.NODE[.port]`: node NODE of the graph included as `seg`.
        if self.includes.contains(&(scope, src.as_str())) {
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
        match self.index.get(src.as_str()) {
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
}
