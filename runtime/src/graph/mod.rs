//! Graph files: YAML parsed with line/column positions kept for every key and value.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;
use std::fmt;
use std::path::{Path, PathBuf};

mod include;
use include::expand;

/// A position in a graph file (1-based line and column).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

fn pos<T>(s: &Spanned<T>) -> Pos {
    Pos {
        line: s.referenced.line(),
        column: s.referenced.column(),
    }
}

/// A map that keeps the file's key order.
struct Ordered<K, V>(Vec<(K, V)>);

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Ordered<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<K, V>(std::marker::PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for V2<K, V> {
            type Value = Ordered<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = m.next_entry()? {
                    v.push(e);
                }
                Ok(Ordered(v))
            }
        }
        d.deserialize_map(V2(std::marker::PhantomData))
    }
}

impl<K, V> Default for Ordered<K, V> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

/// A node body: its keys in file order, with positions.
type RawNode = Spanned<Ordered<Spanned<String>, Spanned<Value>>>;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGraph {
    graph: Spanned<String>,
    #[serde(default)]
    about: Option<String>,
    #[serde(default)]
    params: Ordered<Spanned<String>, Spanned<RawParam>>,
    #[serde(default)]
    inputs: Ordered<Spanned<String>, Spanned<RawInput>>,
    #[serde(default)]
    plugins: Vec<Spanned<String>>,
    nodes: Ordered<Spanned<String>, RawNode>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    #[serde(default)]
    default: Option<Value>,
    #[serde(default)]
    about: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    #[serde(default)]
    about: Option<String>,
}

/// A stream a graph meant for inclusion takes from the graph that includes it (`inputs:`);
/// its nodes name it like a node.
#[derive(Clone, Debug)]
pub struct GraphInput {
    pub name: String,
    pub about: String,
    pub pos: Pos,
}

/// A graph param declared in the file's `params:` section.
#[derive(Clone, Debug)]
pub struct GraphParam {
    pub name: String,
    pub default: Option<Value>,
    pub about: String,
    pub pos: Pos,
}

/// One `key: value` of a node.
#[derive(Clone, Debug)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Value,
    pub value_pos: Pos,
}

/// A node as written in the file.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Its id in the plan: `seg/crf` for node `crf` of a graph included as node `seg`.
    pub id: String,
    pub pos: Pos,
    pub entries: Vec<Entry>,
    /// Index into `GraphDoc::scopes` of the file it was written in (0: the graph file itself).
    pub scope: usize,
}

impl NodeSpec {
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// `kind` of a node that includes another graph file (`file:`), its other keys setting that
/// graph's params.
pub const INCLUDE_KIND: &str = "graph";

/// Keys of an include node that are not params of the included graph.
pub const INCLUDE_KEYS: [&str; 4] = ["kind", "file", "about", "enabled"];

/// One graph file of a (possibly composed) graph.
#[derive(Clone, Debug)]
pub struct Scope {
    pub file: PathBuf,
    /// Folder that relative paths written in this file resolve against.
    pub dir: PathBuf,
    pub params: Vec<GraphParam>,
    pub inputs: Vec<GraphInput>,
    /// Prefix of its node ids in the plan (`seg/`; empty for the graph file itself).
    pub prefix: String,
    /// For an included file: the node that includes it.
    pub caller: Option<Caller>,
}

/// An include node: `seg: { kind: graph, file: x.yaml, param: value, enabled: ... }`.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Its id in the caller's file.
    pub id: String,
    pub pos: Pos,
    /// Scope of the file the include node is written in.
    pub scope: usize,
    /// Values for the included graph's params, written in the caller's file.
    pub args: Vec<Entry>,
    /// Sources of the included graph's inputs (`node` or `node.port` in the caller's file).
    pub ports: Vec<Entry>,
    pub enabled: Option<Entry>,
}

/// A parsed (not yet validated) graph file, its includes expanded.
#[derive(Clone, Debug)]
pub struct GraphDoc {
    /// The file as given (for messages).
    pub file: PathBuf,
    /// Folder that relative paths written in the file resolve against.
    pub dir: PathBuf,
    pub name: String,
    pub about: String,
    pub params: Vec<GraphParam>,
    /// Streams the graph takes when included (a graph with inputs cannot run by itself).
    pub inputs: Vec<GraphInput>,
    pub plugins: Vec<(String, Pos)>,
    /// Every node, those of included graphs in place of their include node.
    pub nodes: Vec<NodeSpec>,
    /// The graph file (0) and each included file, callers before what they include.
    pub scopes: Vec<Scope>,
}

/// A problem found in a graph, with its place in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub pos: Pos,
    pub node: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.line == 0 {
            write!(f, "{}: ", self.file.display())?;
        } else {
            write!(
                f,
                "{}:{}:{}: ",
                self.file.display(),
                self.pos.line,
                self.pos.column
            )?;
        }
        if let Some(n) = &self.node {
            write!(f, "node `{n}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Errors of a whole check, all at once.
#[derive(Clone, Debug)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl GraphDoc {
    /// Reads and parses a graph file.
    pub fn load(path: &Path) -> Result<GraphDoc, Diagnostics> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic {
                file: path.to_path_buf(),
                pos: Pos::default(),
                node: None,
                message: format!("cannot read graph file: {e}"),
            }])
        })?;
        Self::parse(&text, path)
    }

    /// Parses graph text and expands its includes (read from disk); `path` names the file in
    /// messages and sets the folder for relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<GraphDoc, Diagnostics> {
        let mut doc = Self::parse_file(text, path)?;
        let mut scopes = vec![Scope {
            file: doc.file.clone(),
            dir: doc.dir.clone(),
            params: doc.params.clone(),
            inputs: doc.inputs.clone(),
            prefix: String::new(),
            caller: None,
        }];
        let chain = vec![path.canonicalize().unwrap_or_else(|_| path.to_path_buf())];
        let mut nodes = Vec::new();
        let mut errors = Vec::new();
        let own = std::mem::take(&mut doc.nodes);
        expand(own, 0, &chain, &mut scopes, &mut nodes, &mut errors);
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        doc.nodes = nodes;
        doc.scopes = scopes;
        Ok(doc)
    }

    /// Parses one file, includes left as nodes.
    fn parse_file(text: &str, path: &Path) -> Result<GraphDoc, Diagnostics> {
        let raw: RawGraph = serde_saphyr::from_str(text).map_err(|e| {
            let msg = e.to_string();
            Diagnostics(vec![Diagnostic {
                file: path.to_path_buf(),
                pos: error_pos(&msg),
                node: None,
                message: format!("invalid graph file: {}", msg.lines().next().unwrap_or("")),
            }])
        })?;
        let dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let params = raw
            .params
            .0
            .into_iter()
            .map(|(k, v)| GraphParam {
                pos: pos(&k),
                name: k.value,
                default: v.value.default,
                about: v.value.about.unwrap_or_default(),
            })
            .collect();
        let inputs = raw
            .inputs
            .0
            .into_iter()
            .map(|(k, v)| GraphInput {
                pos: pos(&k),
                name: k.value,
                about: v.value.about.unwrap_or_default(),
            })
            .collect();
        let nodes = raw
            .nodes
            .0
            .into_iter()
            .map(|(id, body)| NodeSpec {
                pos: pos(&id),
                id: id.value,
                scope: 0,
                entries: body
                    .value
                    .0
                    .into_iter()
                    .map(|(k, v)| Entry {
                        key_pos: pos(&k),
                        key: k.value,
                        value_pos: pos(&v),
                        value: v.value,
                    })
                    .collect(),
            })
            .collect();
        Ok(GraphDoc {
            file: path.to_path_buf(),
            dir,
            name: raw.graph.value,
            about: raw.about.unwrap_or_default(),
            params,
            inputs,
            plugins: raw
                .plugins
                .into_iter()
                .map(|p| (p.value.clone(), pos(&p)))
                .collect(),
            nodes,
            scopes: vec![],
        })
    }
}

fn diag(file: &Path, pos: Pos, node: Option<&str>, message: String) -> Diagnostic {
    Diagnostic {
        file: file.to_path_buf(),
        pos,
        node: node.map(String::from),
        message,
    }
}

/// Pulls "line N column M" out of a parser message.
fn error_pos(msg: &str) -> Pos {
    let num_after = |key: &str| -> Option<u64> {
        let i = msg.find(key)? + key.len();
        let rest = msg[i..].trim_start_matches([' ', ':']);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    Pos {
        line: num_after("line").unwrap_or(0),
        column: num_after("column").unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_kept() {
        let text = "graph: g\nnodes:\n  a: { kind: x, in: b }\n  b:\n    kind: y\n    size: 3\n";
        let d = GraphDoc::parse(text, Path::new("g.yaml")).unwrap();
        assert_eq!(d.nodes[0].id, "a");
        assert_eq!(d.nodes[0].pos.line, 3);
        assert_eq!(d.nodes[1].entries[1].key, "size");
        assert_eq!(d.nodes[1].entries[1].key_pos.line, 6);
        assert_eq!(d.nodes[1].entries[1].value, Value::from(3));
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let text = "graph: g\nnodes:\n  a: { kind: x\n  b: 2\n";
        let e = GraphDoc::parse(text, Path::new("g.yaml")).unwrap_err();
        assert!(e.0[0].pos.line >= 3, "{e}");
    }
}
