//! Edges between checked nodes: output ports and stream types, cycles, and which nodes stay on.

use super::nodes::NodeState;
use super::Checker;
use crate::decl::did_you_mean;
use crate::registry::Registry;
use petgraph::graph::DiGraph;

/// Per node, per input port: the producing node and its output port.
pub(super) type Edges = Vec<Vec<Option<(usize, usize)>>>;

/// Resolves output port names and checks that stream types match.
pub(super) fn port_types(c: &mut Checker, states: &[NodeState], reg: &Registry) -> Edges {
    // Ports and stream types of edges.
    let mut resolved: Vec<Vec<Option<(usize, usize)>>> = Vec::new();
    for st in states {
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
    resolved
}

pub(super) fn cycles(c: &mut Checker, states: &[NodeState], resolved: &Edges) {
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
}

/// Which nodes run: switched on themselves, with every required input on, and with at least
/// one consumer on (or none at all).
pub(super) fn switched_on(states: &[NodeState], resolved: &Edges, reg: &Registry) -> Vec<bool> {
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
    enabled
}
