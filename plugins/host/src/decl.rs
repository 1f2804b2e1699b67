//! Plugin declarations: JSON (see docs/PLUGINS.md) turned into the runtime's `NodeDecl`, checked
//! as strictly as the built-ins' Rust declarations are by construction.

use serde_json::{Map, Value};
use std::collections::HashSet;
use voxflow_runtime::decl::{check_value, did_you_mean, ParamDecl, ParamType, PortDecl, PortType};
use voxflow_runtime::stream::StreamType;
use voxflow_runtime::validate::RESERVED_KEYS;
use voxflow_runtime::NodeDecl;

const DECL_KEYS: [&str; 6] = ["kind", "about", "docs", "inputs", "outputs", "params"];
const PORT_KEYS: [&str; 4] = ["name", "type", "about", "optional"];
const PARAM_KEYS: [&str; 8] = [
    "name", "type", "about", "default", "required", "min", "max", "choices",
];
const PARAM_TYPES: [&str; 9] = [
    "bool",
    "int",
    "float",
    "string",
    "path",
    "enum",
    "float_list",
    "int_list",
    "string_list",
];

fn check_keys(obj: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), String> {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!(
                "{what}: unknown key `{k}`{} (allowed: {})",
                did_you_mean(k, allowed.iter().copied()),
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

fn string(
    obj: &Map<String, Value>,
    key: &str,
    what: &str,
    required: bool,
) -> Result<String, String> {
    match obj.get(key) {
        None | Some(Value::Null) if !required => Ok(String::new()),
        None | Some(Value::Null) => Err(format!("{what}: `{key}` is missing")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(format!("{what}: `{key}` must be a string, got {v}")),
    }
}

fn bool_key(obj: &Map<String, Value>, key: &str, what: &str) -> Result<bool, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(format!("{what}: `{key}` must be true or false, got {v}")),
    }
}

fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
}

fn list<'a>(obj: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a [Value], String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(v) => Err(format!("{what}: `{key}` must be a list, got {v}")),
    }
}

fn port(v: &Value, dir: &str, n: usize, names: &mut HashSet<String>) -> Result<PortDecl, String> {
    let what = format!("{dir} #{n}");
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{what} must be an object, got {v}"))?;
    check_keys(obj, &PORT_KEYS, &what)?;
    let name = string(obj, "name", &what, true)?;
    let what = format!("{dir} `{name}`");
    if !valid_name(&name) {
        return Err(format!(
            "{what}: names are lower-case letters, digits and `_`, starting with a letter"
        ));
    }
    if !names.insert(name.clone()) {
        return Err(format!("{what} is declared twice"));
    }
    let ty = string(obj, "type", &what, true)?;
    let ty = match ty.as_str() {
        "any" => PortType::Any,
        t => PortType::Fixed(StreamType::parse(t).ok_or_else(|| {
            format!(
                "{what}: unknown stream type `{t}`{} (image, label, prob or any)",
                did_you_mean(t, ["image", "label", "prob", "any"])
            )
        })?),
    };
    let optional = bool_key(obj, "optional", &what)?;
    if optional && dir == "output" {
        return Err(format!("{what}: outputs cannot be optional"));
    }
    Ok(PortDecl {
        name,
        ty,
        optional,
        about: string(obj, "about", &what, false)?,
    })
}

fn number(obj: &Map<String, Value>, key: &str, what: &str) -> Result<Option<f64>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("{what}: `{key}` must be a number, got {v}")),
    }
}

fn param(v: &Value, n: usize, names: &mut HashSet<String>) -> Result<ParamDecl, String> {
    let what = format!("param #{n}");
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{what} must be an object, got {v}"))?;
    check_keys(obj, &PARAM_KEYS, &what)?;
    let name = string(obj, "name", &what, true)?;
    let what = format!("param `{name}`");
    if !valid_name(&name) {
        return Err(format!(
            "{what}: names are lower-case letters, digits and `_`, starting with a letter"
        ));
    }
    if RESERVED_KEYS.contains(&name.as_str()) {
        return Err(format!("{what}: `{name}` is reserved for every node"));
    }
    if !names.insert(name.clone()) {
        return Err(format!(
            "{what} is declared twice or clashes with an input port"
        ));
    }
    let t = string(obj, "type", &what, true)?;
    let (min, max) = (number(obj, "min", &what)?, number(obj, "max", &what)?);
    let choices = match obj.get("choices") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|c| c.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("{what}: `choices` must be a list of strings"))?,
        ),
        Some(v) => {
            return Err(format!(
                "{what}: `choices` must be a list of strings, got {v}"
            ))
        }
    };
    if (min.is_some() || max.is_some()) && !matches!(t.as_str(), "int" | "float") {
        return Err(format!(
            "{what}: `min`/`max` apply to int and float params only"
        ));
    }
    if choices.is_some() && !matches!(t.as_str(), "enum" | "string_list") {
        return Err(format!(
            "{what}: `choices` apply to enum and string_list params only"
        ));
    }
    let int_bound = |b: Option<f64>| -> Result<Option<i64>, String> {
        match b {
            Some(x) if x.fract() != 0.0 => {
                Err(format!("{what}: int bounds must be integers, got {x}"))
            }
            Some(x) => Ok(Some(x as i64)),
            None => Ok(None),
        }
    };
    let ty = match t.as_str() {
        "bool" => ParamType::Bool,
        "int" => ParamType::Int {
            min: int_bound(min)?,
            max: int_bound(max)?,
        },
        "float" => ParamType::Float {
            min,
            max,
            min_exclusive: false,
            max_exclusive: false,
        },
        "string" => ParamType::Str,
        "path" => ParamType::Path,
        "enum" => match choices {
            Some(c) if !c.is_empty() => ParamType::Enum(c),
            _ => return Err(format!("{what}: an enum needs a non-empty `choices` list")),
        },
        "float_list" => ParamType::FloatList,
        "int_list" => ParamType::IntList,
        "string_list" => ParamType::StrList(choices),
        other => {
            return Err(format!(
                "{what}: unknown param type `{other}`{} (one of {})",
                did_you_mean(other, PARAM_TYPES.iter().copied()),
                PARAM_TYPES.join(", ")
            ))
        }
    };
    if let (Some(a), Some(b)) = (min, max) {
        if a > b {
            return Err(format!("{what}: min {a} is greater than max {b}"));
        }
    }
    let required = bool_key(obj, "required", &what)?;
    let default = match obj.get("default") {
        None | Some(Value::Null) => None,
        Some(v) => Some(check_value(&ty, v).map_err(|e| format!("{what}: bad default: {e}"))?),
    };
    if required && default.is_some() {
        return Err(format!("{what}: a required param cannot have a default"));
    }
    Ok(ParamDecl {
        name,
        ty,
        default,
        required,
        about: string(obj, "about", &what, false)?,
    })
}

/// Parses and checks one kind's JSON declaration.
pub fn parse_decl(json: &str) -> Result<NodeDecl, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("the declaration must be a JSON object")?;
    check_keys(obj, &DECL_KEYS, "declaration")?;
    let kind = string(obj, "kind", "declaration", true)?;
    if !valid_name(&kind) {
        return Err(format!(
            "kind `{kind}`: names are lower-case letters, digits and `_`, starting with a letter"
        ));
    }
    let mut d = NodeDecl::new(&kind, &string(obj, "about", "declaration", false)?);
    d.docs = string(obj, "docs", "declaration", false)?
        .trim()
        .to_string();
    let mut inputs = HashSet::new();
    for (n, p) in list(obj, "inputs", "declaration")?.iter().enumerate() {
        d.inputs.push(port(p, "input", n, &mut inputs)?);
    }
    let mut outputs = HashSet::new();
    for (n, p) in list(obj, "outputs", "declaration")?.iter().enumerate() {
        d.outputs.push(port(p, "output", n, &mut outputs)?);
    }
    if d.outputs.is_empty() {
        return Err("declaration: a plugin kind needs at least one output".into());
    }
    // Params share the node's key space with the input ports.
    let mut keys = inputs;
    for (n, p) in list(obj, "params", "declaration")?.iter().enumerate() {
        d.params.push(param(p, n, &mut keys)?);
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_declaration() {
        let d = parse_decl(
            r#"{"kind": "k", "about": "a", "inputs": [{"name": "in", "type": "label"}],
                "outputs": [{"name": "out", "type": "any"}],
                "params": [{"name": "n", "type": "int", "min": 1, "default": 3},
                           {"name": "mode", "type": "enum", "choices": ["a", "b"], "default": "a"}]}"#,
        )
        .unwrap();
        assert_eq!(d.inputs[0].ty, PortType::Fixed(StreamType::Label));
        assert_eq!(
            d.params[0].ty,
            ParamType::Int {
                min: Some(1),
                max: None
            }
        );
        assert_eq!(d.params[1].default, Some(Value::from("a")));
    }

    #[test]
    fn bad_declarations() {
        let cases = [
            (r#"{"kind": "k", "outputs": []}"#, "at least one output"),
            (
                r#"{"kind": "K", "outputs": [{"name": "o", "type": "label"}]}"#,
                "kind `K`",
            ),
            (
                r#"{"kind": "k", "outputs": [{"name": "o", "type": "lable"}]}"#,
                "did you mean `label`",
            ),
            (
                r#"{"kind": "k", "outputs": [{"name": "o", "type": "label", "abut": ""}]}"#,
                "unknown key `abut`",
            ),
            (
                r#"{"kind": "k", "outputs": [{"name": "o", "type": "label"}], "params": [{"name": "x", "type": "int", "default": 1.5}]}"#,
                "bad default",
            ),
            (
                r#"{"kind": "k", "inputs": [{"name": "in", "type": "label"}], "outputs": [{"name": "o", "type": "label"}], "params": [{"name": "in", "type": "int"}]}"#,
                "clashes with an input port",
            ),
            (
                r#"{"kind": "k", "outputs": [{"name": "o", "type": "label"}], "params": [{"name": "enabled", "type": "bool"}]}"#,
                "reserved",
            ),
            ("{", "not valid JSON"),
        ];
        for (json, want) in cases {
            let e = parse_decl(json).unwrap_err();
            assert!(e.contains(want), "{json}: {e}");
        }
    }
}
