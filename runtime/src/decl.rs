//! Node declarations: ports, params, docs. The validator, `voxflow nodes` and the generated
//! node reference all read these.

use crate::stream::StreamType;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Type of a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortType {
    Fixed(StreamType),
    /// Any stream type; checked when the stream arrives.
    Any,
    /// The stream type named by a string param (`image`, `label`, `prob`; other values: any).
    FromParam(String),
}

impl PortType {
    pub fn describe(&self) -> String {
        match self {
            PortType::Fixed(t) => t.name().to_string(),
            PortType::Any => "any".to_string(),
            PortType::FromParam(p) => format!("set by param `{p}`"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct PortDecl {
    pub name: String,
    pub ty: PortType,
    pub optional: bool,
    pub about: String,
}

/// Type of a param value.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamType {
    Bool,
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    /// Bounds are inclusive unless marked exclusive (e.g. a width that must be > 0).
    Float {
        min: Option<f64>,
        max: Option<f64>,
        min_exclusive: bool,
        max_exclusive: bool,
    },
    Str,
    /// A file or folder; relative paths are resolved (graph file folder or current directory).
    /// Values with a scheme such as `demo:` are kept as they are.
    Path,
    /// A list of paths, each resolved like [`ParamType::Path`].
    PathList,
    Enum(Vec<String>),
    FloatList,
    IntList,
    /// A list of strings, optionally from a fixed set.
    StrList(Option<Vec<String>>),
}

impl ParamType {
    pub fn describe(&self) -> String {
        match self {
            ParamType::Bool => "bool".into(),
            ParamType::Int { min, max } => format!(
                "int{}",
                range(min.map(|v| v as f64), max.map(|v| v as f64), false, false)
            ),
            ParamType::Float {
                min,
                max,
                min_exclusive,
                max_exclusive,
            } => format!("float{}", range(*min, *max, *min_exclusive, *max_exclusive)),
            ParamType::Str => "string".into(),
            ParamType::Path => "path".into(),
            ParamType::PathList => "list of path".into(),
            ParamType::Enum(v) => v.join(" | "),
            ParamType::FloatList => "list of float".into(),
            ParamType::IntList => "list of int".into(),
            ParamType::StrList(None) => "list of string".into(),
            ParamType::StrList(Some(v)) => format!("list of ({})", v.join(" | ")),
        }
    }
}

fn range(min: Option<f64>, max: Option<f64>, min_excl: bool, max_excl: bool) -> String {
    let (ge, le) = (
        if min_excl { ">" } else { ">=" },
        if max_excl { "<" } else { "<=" },
    );
    let (open, close) = (
        if min_excl { "(" } else { "[" },
        if max_excl { ")" } else { "]" },
    );
    match (min, max) {
        (None, None) => String::new(),
        (Some(a), None) => format!(" {ge} {a}"),
        (None, Some(b)) => format!(" {le} {b}"),
        (Some(a), Some(b)) => format!(" in {open}{a}, {b}{close}"),
    }
}

#[derive(Clone, Debug)]
pub struct ParamDecl {
    pub name: String,
    pub ty: ParamType,
    /// Value used when the graph does not set it.
    pub default: Option<Value>,
    /// A param without default that must be set.
    pub required: bool,
    pub about: String,
}

/// Everything the runtime knows about a node kind before running it.
#[derive(Clone, Debug)]
pub struct NodeDecl {
    pub kind: String,
    /// One line.
    pub about: String,
    /// Longer documentation (Markdown), may be empty.
    pub docs: String,
    pub inputs: Vec<PortDecl>,
    pub outputs: Vec<PortDecl>,
    pub params: Vec<ParamDecl>,
    /// Path params naming files or folders the node writes (all other path params are read):
    /// the runtime refuses a run whose outputs name one of its inputs, or one file twice.
    pub writes: Vec<String>,
}

impl NodeDecl {
    pub fn new(kind: &str, about: &str) -> Self {
        NodeDecl {
            kind: kind.into(),
            about: about.into(),
            docs: String::new(),
            inputs: vec![],
            outputs: vec![],
            params: vec![],
            writes: vec![],
        }
    }
    pub fn docs(mut self, docs: &str) -> Self {
        self.docs = docs.trim().to_string();
        self
    }
    pub fn input(mut self, name: &str, ty: PortType, about: &str) -> Self {
        self.inputs.push(PortDecl {
            name: name.into(),
            ty,
            optional: false,
            about: about.into(),
        });
        self
    }
    pub fn optional_input(mut self, name: &str, ty: PortType, about: &str) -> Self {
        self.inputs.push(PortDecl {
            name: name.into(),
            ty,
            optional: true,
            about: about.into(),
        });
        self
    }
    pub fn output(mut self, name: &str, ty: PortType, about: &str) -> Self {
        self.outputs.push(PortDecl {
            name: name.into(),
            ty,
            optional: false,
            about: about.into(),
        });
        self
    }
    /// A param with a default value.
    pub fn param(
        mut self,
        name: &str,
        ty: ParamType,
        default: impl Into<Value>,
        about: &str,
    ) -> Self {
        self.params.push(ParamDecl {
            name: name.into(),
            ty,
            default: Some(default.into()),
            required: false,
            about: about.into(),
        });
        self
    }
    /// A param that must be set.
    pub fn required(mut self, name: &str, ty: ParamType, about: &str) -> Self {
        self.params.push(ParamDecl {
            name: name.into(),
            ty,
            default: None,
            required: true,
            about: about.into(),
        });
        self
    }
    /// A param that may be left unset (no default).
    pub fn optional(mut self, name: &str, ty: ParamType, about: &str) -> Self {
        self.params.push(ParamDecl {
            name: name.into(),
            ty,
            default: None,
            required: false,
            about: about.into(),
        });
        self
    }
    pub fn input_index(&self, name: &str) -> Option<usize> {
        self.inputs.iter().position(|p| p.name == name)
    }
    pub fn output_index(&self, name: &str) -> Option<usize> {
        self.outputs.iter().position(|p| p.name == name)
    }
    pub fn param_decl(&self, name: &str) -> Option<&ParamDecl> {
        self.params.iter().find(|p| p.name == name)
    }
    /// Resolved stream type of an output given the node's params (`None` = any).
    pub fn output_type(&self, port: usize, params: &Params) -> Option<StreamType> {
        port_type(&self.outputs[port].ty, params)
    }
    pub fn input_type(&self, port: usize, params: &Params) -> Option<StreamType> {
        port_type(&self.inputs[port].ty, params)
    }
}

fn port_type(ty: &PortType, params: &Params) -> Option<StreamType> {
    match ty {
        PortType::Fixed(t) => Some(*t),
        PortType::Any => None,
        PortType::FromParam(p) => params
            .get(p)
            .and_then(Value::as_str)
            .and_then(StreamType::parse),
    }
}

/// Checked param values of one node (defaults filled in, paths resolved). Built-in kinds read
/// them as their params struct ([`crate::params::from_params`]); plugin kinds by name.
#[derive(Clone, Debug, Default)]
pub struct Params {
    pub values: BTreeMap<String, Value>,
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name).filter(|v| !v.is_null())
    }
    fn need(&self, name: &str) -> Result<&Value, String> {
        self.get(name)
            .ok_or_else(|| format!("param `{name}` is not set"))
    }
    pub fn f64(&self, name: &str) -> Result<f64, String> {
        self.need(name)?
            .as_f64()
            .ok_or_else(|| format!("param `{name}` must be a number"))
    }
    pub fn i64(&self, name: &str) -> Result<i64, String> {
        self.need(name)?
            .as_i64()
            .ok_or_else(|| format!("param `{name}` must be an integer"))
    }
    pub fn usize(&self, name: &str) -> Result<usize, String> {
        let v = self.i64(name)?;
        usize::try_from(v).map_err(|_| format!("param `{name}` must not be negative"))
    }
    pub fn str(&self, name: &str) -> Result<&str, String> {
        self.need(name)?
            .as_str()
            .ok_or_else(|| format!("param `{name}` must be a string"))
    }
    pub fn path(&self, name: &str) -> Result<PathBuf, String> {
        self.str(name).map(PathBuf::from)
    }
}

/// Checks one value against a param type; returns the normalised value or why it is wrong.
pub fn check_value(ty: &ParamType, v: &Value) -> Result<Value, String> {
    let bad = |what: &str| Err(format!("expected {what}, got {}", short(v)));
    match ty {
        ParamType::Bool => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(s) if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
            _ => bad("true or false"),
        },
        ParamType::Int { min, max } => {
            let Some(x) = v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            else {
                return bad("an integer");
            };
            if min.is_some_and(|m| x < m) || max.is_some_and(|m| x > m) {
                return Err(format!("{x} is out of range (must be {})", ty.describe()));
            }
            Ok(Value::from(x))
        }
        ParamType::Float {
            min,
            max,
            min_exclusive,
            max_exclusive,
        } => {
            let Some(x) = v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            else {
                return bad("a number");
            };
            let below = min.is_some_and(|m| x < m || *min_exclusive && x == m);
            let above = max.is_some_and(|m| x > m || *max_exclusive && x == m);
            if !x.is_finite() || below || above {
                return Err(format!("{x} is out of range (must be {})", ty.describe()));
            }
            Ok(Value::from(x))
        }
        ParamType::Str | ParamType::Path => match v {
            Value::String(_) => Ok(v.clone()),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            _ => bad("a string"),
        },
        ParamType::Enum(choices) => match v.as_str() {
            Some(s) if choices.iter().any(|c| c == s) => Ok(v.clone()),
            Some(s) => Err(format!(
                "`{s}` is not one of {}{}",
                choices.join(", "),
                did_you_mean(s, choices.iter().map(String::as_str))
            )),
            None => bad("a string"),
        },
        ParamType::FloatList => match v.as_array() {
            Some(a) if a.iter().all(|x| x.as_f64().is_some()) => Ok(v.clone()),
            _ => bad("a list of numbers"),
        },
        ParamType::IntList => match v.as_array() {
            Some(a) if a.iter().all(|x| x.as_i64().is_some()) => Ok(v.clone()),
            _ => bad("a list of integers"),
        },
        ParamType::PathList => match v.as_array() {
            Some(a) if a.iter().all(Value::is_string) => Ok(v.clone()),
            _ => bad("a list of paths"),
        },
        ParamType::StrList(choices) => {
            let Some(a) = v.as_array() else {
                return bad("a list of strings");
            };
            for x in a {
                let Some(s) = x.as_str() else {
                    return bad("a list of strings");
                };
                if let Some(c) = choices {
                    if !c.iter().any(|c| c == s) {
                        return Err(format!("`{s}` is not one of {}", c.join(", ")));
                    }
                }
            }
            Ok(v.clone())
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        format!("{}...", &s[..40])
    } else {
        s
    }
}

/// `" (did you mean `x`?)"` when a candidate is close, else empty.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let best = candidates
        .into_iter()
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min();
    match best {
        Some((_, c)) => format!(" (did you mean `{c}`?)"),
        None => String::new(),
    }
}

/// Edit distance counting a swap of two neighbouring letters as one edit.
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, v) in d[0].iter_mut().enumerate() {
        *v = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("hu_windw", ["hu_window", "equalize"]),
            " (did you mean `hu_window`?)"
        );
        assert_eq!(did_you_mean("zzz", ["hu_window"]), "");
    }

    #[test]
    fn value_checks() {
        let f = ParamType::Float {
            min: Some(0.0),
            max: None,
            min_exclusive: false,
            max_exclusive: false,
        };
        assert!(check_value(&f, &Value::from(-1.0)).is_err());
        assert_eq!(check_value(&f, &Value::from(2)).unwrap(), Value::from(2.0));
        assert_eq!(check_value(&f, &Value::from(0)).unwrap(), Value::from(0.0));
        let positive = ParamType::Float {
            min: Some(0.0),
            max: Some(1.0),
            min_exclusive: true,
            max_exclusive: false,
        };
        let e = check_value(&positive, &Value::from(0)).unwrap_err();
        assert_eq!(e, "0 is out of range (must be float in (0, 1])");
        assert!(check_value(&positive, &Value::from(1)).is_ok());
        assert!(check_value(&ParamType::Bool, &Value::from(1)).is_err());
    }
}
