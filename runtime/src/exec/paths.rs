//! The files a plan names, and the check before a run that no output overwrites an input or
//! another output.

use super::RunError;
use crate::decl::ParamType;
use crate::registry::Registry;
use crate::validate::Plan;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The identity of a path for comparing outputs with inputs: device and inode when it exists
/// (so that other spellings, `..` and links compare equal), else its canonical folder plus name.
#[derive(PartialEq)]
enum FileId {
    Inode(u64, u64),
    Path(PathBuf),
}

fn file_id(p: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::metadata(p) {
        return Some(FileId::Inode(m.dev(), m.ino()));
    }
    let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new(".")).canonicalize().ok()?;
    Some(FileId::Path(dir.join(p.file_name()?)))
}

/// One path a plan node is given in a path param.
pub struct PathUse<'a> {
    /// Index of the node in the plan.
    pub node: usize,
    pub param: &'a str,
    /// As resolved by the check (a value with a scheme, such as `demo:`, as written).
    pub path: &'a str,
    /// The node writes it (the param is among its declared outputs).
    pub writes: bool,
}

/// Every path the plan's nodes are given, in plan order.
pub fn path_uses<'a>(plan: &'a Plan, reg: &'a Registry) -> Vec<PathUse<'a>> {
    let mut uses = Vec::new();
    for (n, pn) in plan.nodes.iter().enumerate() {
        let Some(e) = reg.get(&pn.kind) else { continue };
        for pd in &e.decl.params {
            let values: Vec<&str> = match (&pd.ty, pn.params.get(&pd.name)) {
                (ParamType::Path, Some(Value::String(s))) => vec![s.as_str()],
                (ParamType::PathList, Some(Value::Array(a))) => {
                    a.iter().filter_map(Value::as_str).collect()
                }
                _ => continue,
            };
            let writes = e.decl.writes.contains(&pd.name);
            uses.extend(values.into_iter().map(|path| PathUse {
                node: n,
                param: &pd.name,
                path,
                writes,
            }));
        }
    }
    uses
}

/// Refuses a plan whose outputs name one of its inputs (the same file however spelled or
/// linked), or one file twice, before any node is built.
pub fn check_paths(plan: &Plan, reg: &Registry) -> Result<(), RunError> {
    let uses = path_uses(plan, reg);
    let ids: Vec<Option<FileId>> = uses.iter().map(|u| file_id(Path::new(u.path))).collect();
    for (a, out) in uses.iter().enumerate().filter(|(_, u)| u.writes) {
        for (b, other) in uses.iter().enumerate() {
            // Each pair of outputs once.
            if a == b || (other.writes && b < a) || ids[a].is_none() || ids[a] != ids[b] {
                continue;
            }
            let on = &plan.nodes[other.node];
            let what = if other.writes {
                "the output"
            } else {
                "the input"
            };
            return Err(RunError {
                node: plan.nodes[out.node].id.clone(),
                kind: plan.nodes[out.node].kind.clone(),
                file: plan.nodes[out.node].file.clone(),
                pos: plan.nodes[out.node].pos,
                message: format!(
                    "output `{}` = {} is the same file as {what} `{}` = {} of node `{}` ({}, line {}); \
                     refusing to run (choose another output path)",
                    out.param, out.path, other.param, other.path, on.id, on.kind, on.pos.line
                ),
            });
        }
    }
    Ok(())
}
