//! Typed node params: a node's params are one struct (serde `Deserialize`, unknown fields
//! denied) whose fields `#[derive(NodeParams)]` turns into the [`ParamDecl`]s that the checker,
//! `voxflow nodes` and the node reference read. A [`TypedKind`] builds its node from that
//! struct. Plugins keep the dynamic [`ParamDecl`] / [`Params`] path.

use crate::decl::{NodeDecl, ParamDecl, ParamType, Params};
use crate::node::{BuildEnv, Node, NodeError, NodeKind};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;

pub use voxflow_params_derive::{NodeParams, ParamEnum};

/// A struct of node params.
pub trait NodeParams: DeserializeOwned {
    /// One declaration per field, in field order.
    fn decls() -> Vec<ParamDecl>;
    /// `(param, message)` for each value that does not fit its field's Rust type.
    fn value_errors(values: &ValueMap) -> Vec<(String, String)>;
    /// The path params marked `#[param(writes)]`: files or folders the node writes.
    fn written() -> Vec<&'static str>;
}

/// Param values by name.
pub type ValueMap = serde_json::Map<String, Value>;

/// Why `values[name]` does not fit `T`, if it is set and does not (used by `#[derive(NodeParams)]`).
pub fn value_error<T: DeserializeOwned>(values: &ValueMap, name: &str) -> Option<(String, String)> {
    let v = values.get(name)?;
    serde_json::from_value::<T>(v.clone())
        .err()
        .map(|e| (name.to_string(), e.to_string()))
}

/// Numeric bounds of a param as written in `#[param(...)]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bounds {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub min_exclusive: bool,
    pub max_exclusive: bool,
}

/// A Rust type a param field may have, and the param type it is declared as.
pub trait ParamKind {
    /// An `Option` field: the param may be left unset.
    const OPTIONAL: bool = false;
    fn param_type(bounds: &Bounds) -> ParamType;
}

/// A type whose `Vec` is a list param.
pub trait ListItem {
    fn list_type() -> ParamType;
}

/// A unit-variant enum param; the choices are the serde names of its variants.
pub trait ParamEnum: Serialize {
    fn choices() -> Vec<String>;
}

/// The serde name of an enum variant (used by `#[derive(ParamEnum)]`).
pub fn variant_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        other => panic!("a ParamEnum variant must serialise to a string, got {other:?}"),
    }
}

/// A default value as the declaration holds it (used by `#[derive(NodeParams)]`).
pub fn default_value<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("param defaults serialise to JSON")
}

/// One field's declaration (used by `#[derive(NodeParams)]`).
pub fn param_decl<T: ParamKind>(
    name: &str,
    about: &str,
    bounds: Bounds,
    default: Option<Value>,
) -> ParamDecl {
    ParamDecl {
        name: name.into(),
        ty: T::param_type(&bounds),
        required: default.is_none() && !T::OPTIONAL,
        default,
        about: about.into(),
    }
}

fn float(b: &Bounds) -> ParamType {
    ParamType::Float {
        min: b.min,
        max: b.max,
        min_exclusive: b.min_exclusive,
        max_exclusive: b.max_exclusive,
    }
}

/// An int range from bounds; an exclusive bound `x` becomes `x + 1` / `x - 1`.
fn int(b: &Bounds, lo: Option<i64>, hi: Option<i64>) -> ParamType {
    let min = b.min.map(|m| m as i64 + i64::from(b.min_exclusive));
    let max = b.max.map(|m| m as i64 - i64::from(b.max_exclusive));
    ParamType::Int {
        min: match (min, lo) {
            (Some(m), Some(l)) => Some(m.max(l)),
            (m, l) => m.or(l),
        },
        max: match (max, hi) {
            (Some(m), Some(h)) => Some(m.min(h)),
            (m, h) => m.or(h),
        },
    }
}

macro_rules! plain {
    ($($t:ty => $e:expr),* $(,)?) => {$(
        impl ParamKind for $t {
            fn param_type(b: &Bounds) -> ParamType {
                debug_assert!(b.min.is_none() && b.max.is_none(), "bounds on a non-number");
                $e
            }
        }
    )*};
}
plain!(bool => ParamType::Bool, String => ParamType::Str, PathBuf => ParamType::Path);

macro_rules! numbers {
    (float: $($f:ty),*; int: $($i:ty),*) => {
        $(impl ParamKind for $f {
            fn param_type(b: &Bounds) -> ParamType { float(b) }
        }
        impl ListItem for $f {
            fn list_type() -> ParamType { ParamType::FloatList }
        })*
        $(impl ParamKind for $i {
            /// The type's own range, narrowed by the bounds.
            fn param_type(b: &Bounds) -> ParamType {
                let lo = i64::try_from(<$i>::MIN).ok();
                let hi = i64::try_from(<$i>::MAX).ok().filter(|&h| h < i64::from(u32::MAX));
                int(b, lo.filter(|&l| l == 0), hi)
            }
        }
        impl ListItem for $i {
            fn list_type() -> ParamType { ParamType::IntList }
        })*
    };
}
numbers!(float: f32, f64; int: i64, usize, u8, u16, u32, u64);

impl ListItem for String {
    fn list_type() -> ParamType {
        ParamType::StrList(None)
    }
}

impl ListItem for PathBuf {
    fn list_type() -> ParamType {
        ParamType::PathList
    }
}

impl<T: ListItem> ParamKind for Vec<T> {
    fn param_type(_: &Bounds) -> ParamType {
        T::list_type()
    }
}

impl<T: ParamKind> ParamKind for Option<T> {
    const OPTIONAL: bool = true;
    fn param_type(b: &Bounds) -> ParamType {
        T::param_type(b)
    }
}

/// The params of a node kind that has none.
#[derive(serde::Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

fn value_map(p: &Params) -> ValueMap {
    p.values
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Reads checked params into their struct; an error names the param whose value does not fit.
pub fn from_params<P: NodeParams>(p: &Params) -> Result<P, String> {
    let values = value_map(p);
    serde_json::from_value(Value::Object(values.clone())).map_err(|e| {
        match P::value_errors(&values).into_iter().next() {
            Some((name, m)) => format!("param `{name}`: {m}"),
            None => format!("params: {e}"),
        }
    })
}

/// A built-in node kind whose params are one [`NodeParams`] struct. Every `TypedKind` is a
/// [`NodeKind`]: its declaration gets the params from the struct, and `build` reads the struct.
pub trait TypedKind: Send + Sync {
    type Params: NodeParams;
    /// Kind, docs and ports (the params come from [`TypedKind::Params`]).
    fn declare(&self) -> NodeDecl;
    /// Checks across params, run by `voxflow check` and before `create`: `(param, message)`.
    fn check_params(&self, _p: &Self::Params) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Builds the node from checked params.
    fn create(&self, p: Self::Params, env: &BuildEnv) -> Result<Box<dyn Node>, NodeError>;
}

impl<K: TypedKind> NodeKind for K {
    fn decl(&self) -> NodeDecl {
        let mut d = self.declare();
        d.params = K::Params::decls();
        d.writes = K::Params::written().into_iter().map(String::from).collect();
        d
    }

    fn check(&self, params: &Params) -> Vec<(String, String)> {
        match from_params::<K::Params>(params) {
            Ok(p) => self.check_params(&p),
            Err(e) => {
                let wrong = K::Params::value_errors(&value_map(params));
                if !wrong.is_empty() {
                    wrong
                } else if missing_required::<K::Params>(params) {
                    // Reported by the checker already.
                    Vec::new()
                } else {
                    vec![(String::new(), e)]
                }
            }
        }
    }

    fn build(&self, params: &Params, env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        let p = from_params::<K::Params>(params)?;
        let errors = self.check_params(&p);
        if !errors.is_empty() {
            let all: Vec<String> = errors
                .into_iter()
                .map(|(name, m)| format!("param `{name}`: {m}"))
                .collect();
            return Err(NodeError::msg(all.join("; ")));
        }
        self.create(p, env)
    }
}

fn missing_required<P: NodeParams>(params: &Params) -> bool {
    P::decls()
        .iter()
        .any(|d| d.required && params.get(&d.name).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, ParamEnum, Clone, Copy, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Shape {
        Ball,
        BigBox,
    }

    #[derive(Deserialize, NodeParams, Debug)]
    #[serde(deny_unknown_fields)]
    struct Example {
        /// Kernel width, mm.
        /// Must be positive.
        #[param(default = 1.5, gt = 0)]
        sigma: f64,
        /// passes
        #[param(default = 3, max = 10)]
        passes: usize,
        /// shape
        #[param(default = Shape::BigBox)]
        shape: Shape,
        /// optional file
        file: Option<PathBuf>,
        /// needed
        name: String,
    }

    #[test]
    fn derive_declares_every_field() {
        let d = Example::decls();
        let names: Vec<&str> = d.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["sigma", "passes", "shape", "file", "name"]);
        assert_eq!(d[0].about, "Kernel width, mm. Must be positive.");
        assert_eq!(d[0].ty.describe(), "float > 0");
        assert_eq!(d[0].default, Some(Value::from(1.5)));
        assert_eq!(d[1].ty.describe(), "int in [0, 10]");
        assert_eq!(d[2].ty.describe(), "ball | big_box");
        assert_eq!(d[2].default, Some(Value::from("big_box")));
        assert!(!d[3].required && d[3].default.is_none());
        assert!(d[4].required);
    }

    #[derive(Deserialize, NodeParams)]
    struct Outputs {
        /// written
        #[param(writes)]
        out: PathBuf,
        /// read
        #[serde(flatten)]
        #[param(flatten)]
        inner: Inner,
    }

    #[derive(Deserialize, NodeParams)]
    struct Inner {
        /// read
        input: PathBuf,
        /// written too
        #[param(writes)]
        log: Option<PathBuf>,
    }

    #[test]
    fn writes_marks_written_paths_flattened_too() {
        assert_eq!(Example::written(), Vec::<&str>::new());
        assert_eq!(Outputs::written(), ["out", "log"]);
        let mut p = Params::default();
        for (k, v) in [("out", "o.dat"), ("input", "i.dat"), ("log", "l.txt")] {
            p.values.insert(k.into(), Value::from(v));
        }
        let o: Outputs = from_params(&p).unwrap();
        assert_eq!(
            (o.out, o.inner.input, o.inner.log),
            ("o.dat".into(), "i.dat".into(), Some("l.txt".into()))
        );
    }

    #[test]
    fn typed_read_and_unknown_fields() {
        let mut p = Params::default();
        for (k, v) in [("sigma", Value::from(2.0)), ("passes", Value::from(4))] {
            p.values.insert(k.into(), v);
        }
        p.values.insert("shape".into(), Value::from("ball"));
        p.values.insert("name".into(), Value::from("x"));
        let e: Example = from_params(&p).unwrap();
        assert_eq!((e.sigma, e.passes, e.shape), (2.0, 4, Shape::Ball));
        assert_eq!((e.file, e.name.as_str()), (None, "x"));
        p.values.insert("extra".into(), Value::from(1));
        let err = from_params::<Example>(&p).unwrap_err();
        assert!(err.contains("unknown field `extra`"), "{err}");
    }
}
