//! Includes: a `kind: graph` node replaced by the nodes of the file it names.

use super::{diag, Caller, Diagnostic, GraphDoc, NodeSpec, Scope, INCLUDE_KEYS, INCLUDE_KIND};
use std::path::PathBuf;

/// Appends `own` (the nodes of scope `scope`) to `out`, each include node replaced by the nodes
/// of the file it names. `chain`: the files being included, outermost first (for cycles).
pub(super) fn expand(
    own: Vec<NodeSpec>,
    scope: usize,
    chain: &[PathBuf],
    scopes: &mut Vec<Scope>,
    out: &mut Vec<NodeSpec>,
    errors: &mut Vec<Diagnostic>,
) {
    let file = scopes[scope].file.clone();
    let prefix = scopes[scope].prefix.clone();
    for mut node in own {
        if node.id.contains('/') {
            errors.push(diag(
                &file,
                node.pos,
                Some(&node.id),
                "node ids may not contain `/` (it joins included graphs' ids)".into(),
            ));
        }
        let is_include = node
            .entry("kind")
            .is_some_and(|e| e.value.as_str() == Some(INCLUDE_KIND));
        if !is_include {
            node.id = format!("{prefix}{}", node.id);
            node.scope = scope;
            out.push(node);
            continue;
        }
        let id = node.id.as_str();
        let Some(file_entry) = node.entry("file") else {
            errors.push(diag(
                &file,
                node.pos,
                Some(id),
                "a `kind: graph` node needs `file:` (the graph file to include)".into(),
            ));
            continue;
        };
        let Some(name) = file_entry.value.as_str().filter(|s| !s.contains('$')) else {
            errors.push(diag(
                &file,
                file_entry.value_pos,
                Some(id),
                "`file` must be a path written out (no `$param`)".into(),
            ));
            continue;
        };
        let path = scopes[scope].dir.join(name);
        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        if let Some(start) = chain.iter().position(|f| *f == canonical) {
            let names: Vec<String> = chain[start..]
                .iter()
                .chain([&canonical])
                .map(|f| f.display().to_string())
                .collect();
            errors.push(diag(
                &file,
                file_entry.value_pos,
                Some(id),
                format!("graph files include each other: {}", names.join(" -> ")),
            ));
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(diag(
                    &file,
                    file_entry.value_pos,
                    Some(id),
                    format!("cannot read included graph file {}: {e}", path.display()),
                ));
                continue;
            }
        };
        let inner = match GraphDoc::parse_file(&text, &path) {
            Ok(d) => d,
            Err(d) => {
                errors.extend(d.0);
                continue;
            }
        };
        if let Some((_, p)) = inner.plugins.first() {
            errors.push(diag(
                &path,
                *p,
                None,
                "an included graph may not load plugins; list them in the including graph".into(),
            ));
        }
        let mut args = Vec::new();
        let mut ports = Vec::new();
        for e in &node.entries {
            if INCLUDE_KEYS.contains(&e.key.as_str()) {
                continue;
            }
            if inner.params.iter().any(|p| p.name == e.key) {
                args.push(e.clone());
            } else if inner.inputs.iter().any(|i| i.name == e.key) {
                ports.push(e.clone());
            } else {
                errors.push(diag(
                    &file,
                    e.key_pos,
                    Some(id),
                    format!(
                        "the included graph {} has no {} `{}`{}",
                        path.display(),
                        if inner.inputs.is_empty() {
                            "param"
                        } else {
                            "param or input"
                        },
                        e.key,
                        crate::decl::did_you_mean(
                            &e.key,
                            inner
                                .params
                                .iter()
                                .map(|p| p.name.as_str())
                                .chain(inner.inputs.iter().map(|i| i.name.as_str()))
                        )
                    ),
                ));
            }
        }
        for input in &inner.inputs {
            if inner.params.iter().any(|p| p.name == input.name) {
                errors.push(diag(
                    &path,
                    input.pos,
                    None,
                    format!(
                        "graph input `{}` has the name of a param of this graph",
                        input.name
                    ),
                ));
            } else if !ports.iter().any(|e| e.key == input.name) {
                errors.push(diag(
                    &file,
                    node.pos,
                    Some(id),
                    format!(
                        "input `{}` of the included graph {} is not connected (`{}: NODE`)",
                        input.name,
                        path.display(),
                        input.name
                    ),
                ));
            }
        }
        let inner_scope = scopes.len();
        scopes.push(Scope {
            file: path,
            dir: inner.dir,
            params: inner.params,
            inputs: inner.inputs,
            prefix: format!("{prefix}{id}/"),
            caller: Some(Caller {
                id: node.id.clone(),
                pos: node.pos,
                scope,
                args,
                ports,
                enabled: node.entry("enabled").cloned(),
            }),
        });
        let mut inner_chain = chain.to_vec();
        inner_chain.push(canonical);
        expand(inner.nodes, inner_scope, &inner_chain, scopes, out, errors);
    }
}
