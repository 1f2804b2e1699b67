//! The voxflow model contract: metadata keys and the validated [`ModelInfo`].

use std::fmt;
use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use crate::FcnError;

/// `metadata_props` key: voxflow model version (non-empty string, e.g. `"1"`).
pub const KEY_MODEL_VERSION: &str = "voxflow.model_version";
/// `metadata_props` key: comma-separated class names, one per output channel, in channel order.
pub const KEY_CLASSES: &str = "voxflow.classes";
/// `metadata_props` key: `"H,W"`, the slice size the model segments (= its output size).
pub const KEY_INPUT_SIZE: &str = "voxflow.input_size";
/// `metadata_props` key: reflect padding in px on each side; the model's input tensor is
/// `[N, 2r + 1, H + 2p, W + 2p]`, its output `[N, C, H, W]`.
pub const KEY_PADDING: &str = "voxflow.padding";
/// `metadata_props` key: the preprocessing the model expects, see [`PreprocessStep`].
pub const KEY_PREPROCESS: &str = "voxflow.preprocess";
/// `metadata_props` key: `ct` or `mr`.
pub const KEY_MODALITY: &str = "voxflow.modality";
/// Optional `metadata_props` key: how an int8 model was quantized.
pub const KEY_QUANTIZED: &str = "voxflow.quantized";
/// Optional `metadata_props` key: `r`, the neighbouring slices the model reads on each side;
/// input channel `i` is slice `k - r + i` (the volume's end slices repeated). Absent: 0.
pub const KEY_CONTEXT_SLICES: &str = "voxflow.context_slices";
/// The largest `voxflow.context_slices` accepted.
pub const MAX_CONTEXT_SLICES: usize = 8;

/// All required keys.
pub const REQUIRED_KEYS: [&str; 6] = [
    KEY_MODEL_VERSION,
    KEY_CLASSES,
    KEY_INPUT_SIZE,
    KEY_PADDING,
    KEY_PREPROCESS,
    KEY_MODALITY,
];

/// Imaging modality a model was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    Ct,
    Mr,
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Modality::Ct => "ct",
            Modality::Mr => "mr",
        })
    }
}

/// One step of `voxflow.preprocess` (`;`-separated, applied in order; `none` = no steps).
#[derive(Debug, Clone, PartialEq)]
pub enum PreprocessStep {
    /// `hu_window:LO,HI`: clip intensities to `[LO, HI]` (HU).
    HuWindow { lo: f64, hi: f64 },
    /// `mr_norm:PLO,PHI`: clip to the volume's `PLO`/`PHI` percentiles (0..100).
    MrNorm {
        lo_percentile: f64,
        hi_percentile: f64,
    },
    /// `equalize:BINS`: histogram equalisation with `BINS` bins, output in `[0, 1]`.
    Equalize { bins: u32 },
    /// `scale:A,B`: `x * A + B`.
    Scale { mul: f64, add: f64 },
    /// `liver_level:V`: done by `crop_resample` on the liver crops: intensities inside the liver
    /// shifted so the median over the volume's liver voxels is `V`, then clipped to the range
    /// the previous steps produce.
    LiverLevel { level: f64 },
}

impl PreprocessStep {
    /// The same step with the same arguments (numbers equal to a relative 1e-6).
    pub fn matches(&self, other: &PreprocessStep) -> bool {
        use PreprocessStep::*;
        let eq = |u: f64, v: f64| (u - v).abs() <= 1e-6 * (1.0 + u.abs().max(v.abs()));
        match (self, other) {
            (HuWindow { lo: a, hi: b }, HuWindow { lo: c, hi: d }) => eq(*a, *c) && eq(*b, *d),
            (
                MrNorm {
                    lo_percentile: a,
                    hi_percentile: b,
                },
                MrNorm {
                    lo_percentile: c,
                    hi_percentile: d,
                },
            ) => eq(*a, *c) && eq(*b, *d),
            (Equalize { bins: a }, Equalize { bins: b }) => a == b,
            (Scale { mul: a, add: b }, Scale { mul: c, add: d }) => eq(*a, *c) && eq(*b, *d),
            (LiverLevel { level: a }, LiverLevel { level: b }) => eq(*a, *b),
            _ => false,
        }
    }

    /// Parses a whole `voxflow.preprocess` value.
    pub fn parse_list(s: &str) -> Result<Vec<PreprocessStep>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty (use \"none\" for no preprocessing)".into());
        }
        if s == "none" {
            return Ok(Vec::new());
        }
        s.split(';').map(|step| Self::parse(step.trim())).collect()
    }

    fn parse(step: &str) -> Result<PreprocessStep, String> {
        let (name, args) = step.split_once(':').unwrap_or((step, ""));
        let nums = || -> Result<Vec<f64>, String> {
            args.split(',')
                .map(|a| {
                    a.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| format!("step `{step}`: `{a}` is not a number"))
                })
                .collect()
        };
        let want = |n: usize| -> Result<Vec<f64>, String> {
            let v = nums()?;
            if v.len() == n {
                Ok(v)
            } else {
                Err(format!(
                    "step `{step}`: expected {n} argument(s), got {}",
                    v.len()
                ))
            }
        };
        match name.trim() {
            "hu_window" => {
                let v = want(2)?;
                if v[0] >= v[1] {
                    return Err(format!("step `{step}`: LO must be < HI"));
                }
                Ok(PreprocessStep::HuWindow { lo: v[0], hi: v[1] })
            }
            "mr_norm" => {
                let v = want(2)?;
                if !(0.0..v[1]).contains(&v[0]) || v[1] > 100.0 {
                    return Err(format!("step `{step}`: need 0 <= PLO < PHI <= 100"));
                }
                Ok(PreprocessStep::MrNorm {
                    lo_percentile: v[0],
                    hi_percentile: v[1],
                })
            }
            "equalize" => {
                let v = want(1)?;
                if v[0] < 2.0 || v[0].fract() != 0.0 || v[0] > 65536.0 {
                    return Err(format!(
                        "step `{step}`: BINS must be an integer in 2..=65536"
                    ));
                }
                Ok(PreprocessStep::Equalize { bins: v[0] as u32 })
            }
            "scale" => {
                let v = want(2)?;
                Ok(PreprocessStep::Scale {
                    mul: v[0],
                    add: v[1],
                })
            }
            "liver_level" => Ok(PreprocessStep::LiverLevel {
                level: want(1)?[0],
            }),
            other => Err(format!(
                "unknown step `{other}` (known: hu_window, mr_norm, equalize, scale, liver_level, none)"
            )),
        }
    }
}

/// Validated description of a model file (metadata + tensor signature).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// The model file.
    pub path: PathBuf,
    /// `voxflow.model_version`.
    pub model_version: String,
    /// `voxflow.classes`, one per output channel.
    pub classes: Vec<String>,
    /// `voxflow.input_size` as `(H, W)`: what [`crate::FcnSession::run`] takes and returns.
    pub input_size: (usize, usize),
    /// `voxflow.padding`: reflect padding applied inside [`crate::FcnSession::run`].
    pub padding: usize,
    /// `voxflow.preprocess`, parsed.
    pub preprocess: Vec<PreprocessStep>,
    /// `voxflow.preprocess` as written in the file.
    pub preprocess_raw: String,
    /// `voxflow.modality`.
    pub modality: Modality,
    /// `voxflow.quantized`, for an int8 model.
    pub quantized: Option<String>,
    /// `voxflow.context_slices` (0 when absent): the model reads `2r + 1` slices per output slice.
    pub context_slices: usize,
    /// Name of the model's single input.
    pub input_name: String,
    /// Name of the model's single output.
    pub output_name: String,
}

impl ModelInfo {
    /// Number of output classes (channels).
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Channels of the model's input tensor: the slice and `context_slices` neighbours on each side.
    pub fn input_channels(&self) -> usize {
        2 * self.context_slices + 1
    }

    /// Spatial size of the model's input tensor: `(H + 2p, W + 2p)`.
    pub fn tensor_input_size(&self) -> (usize, usize) {
        (
            self.input_size.0 + 2 * self.padding,
            self.input_size.1 + 2 * self.padding,
        )
    }

    /// Reads and validates a model file (loads ONNX Runtime if needed; builds a CPU session).
    pub fn load(path: impl AsRef<Path>) -> Result<ModelInfo, FcnError> {
        let path = path.as_ref();
        crate::session::check_model_file(path)?;
        let (_, env) = crate::library::environment()?;
        let session = Session::builder(env)
            .map_err(|e| e.to_string())
            .and_then(|b| crate::session::commit_quietly(b, path))
            .map_err(|message| FcnError::Ort {
                path: path.to_path_buf(),
                message,
            })?;
        Self::from_session(path, &session)
    }

    /// Validates the metadata and tensor signature of an open session.
    pub fn from_session(path: &Path, session: &Session) -> Result<ModelInfo, FcnError> {
        let err = |field: &str, message: String| FcnError::Model {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        let meta = session
            .metadata()
            .map_err(|e| err("metadata_props", e.to_string()))?;
        let get = |key: &str| -> Result<String, FcnError> {
            match meta.custom(key) {
                Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                Some(_) => Err(err(key, "is empty".into())),
                None => Err(err(
                    key,
                    "missing from metadata_props (see docs/MODELS.md)".into(),
                )),
            }
        };
        let model_version = get(KEY_MODEL_VERSION)?;
        let classes: Vec<String> = get(KEY_CLASSES)?
            .split(',')
            .map(|c| c.trim().to_string())
            .collect();
        if classes.len() < 2 || classes.iter().any(String::is_empty) {
            return Err(err(
                KEY_CLASSES,
                format!("need >= 2 non-empty comma-separated names, got {classes:?}"),
            ));
        }
        let size_raw = get(KEY_INPUT_SIZE)?;
        let input_size = parse_size(&size_raw).ok_or_else(|| {
            err(
                KEY_INPUT_SIZE,
                format!("`{size_raw}` is not \"H,W\" with H, W > 0"),
            )
        })?;
        let pad_raw = get(KEY_PADDING)?;
        let padding: usize = pad_raw.parse().map_err(|_| {
            err(
                KEY_PADDING,
                format!("`{pad_raw}` is not a non-negative integer"),
            )
        })?;
        if padding >= input_size.0 || padding >= input_size.1 {
            return Err(err(
                KEY_PADDING,
                format!("{padding} px of reflect padding needs an input larger than {padding} px"),
            ));
        }
        let preprocess_raw = get(KEY_PREPROCESS)?;
        let preprocess =
            PreprocessStep::parse_list(&preprocess_raw).map_err(|m| err(KEY_PREPROCESS, m))?;
        let modality = match get(KEY_MODALITY)?.to_ascii_lowercase().as_str() {
            "ct" => Modality::Ct,
            "mr" | "mri" => Modality::Mr,
            other => return Err(err(KEY_MODALITY, format!("`{other}` is not `ct` or `mr`"))),
        };

        let context_slices = match meta.custom(KEY_CONTEXT_SLICES) {
            None => 0,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|r| *r <= MAX_CONTEXT_SLICES)
                .ok_or_else(|| {
                    err(
                        KEY_CONTEXT_SLICES,
                        format!(
                            "`{}` is not a whole number of slices from 0 to {MAX_CONTEXT_SLICES}",
                            v.trim()
                        ),
                    )
                })?,
        };

        let (inputs, outputs) = (session.inputs(), session.outputs());
        if inputs.len() != 1 {
            return Err(err(
                "input",
                format!("expected 1 input, found {}", inputs.len()),
            ));
        }
        if outputs.len() != 1 {
            return Err(err(
                "output",
                format!("expected 1 output, found {}", outputs.len()),
            ));
        }
        let (th, tw) = (input_size.0 + 2 * padding, input_size.1 + 2 * padding);
        let in_field = format!("input `{}`", inputs[0].name());
        let ch = 2 * context_slices + 1;
        check_tensor(inputs[0].dtype(), [None, Some(ch), Some(th), Some(tw)])
            .map_err(|m| err(&in_field, format!("{m}; expected float32 [N, {ch}, {th}, {tw}] ({ch} = 2 x {KEY_CONTEXT_SLICES} {context_slices} + 1, {KEY_INPUT_SIZE} {size_raw} + 2 x {KEY_PADDING} {padding})")))?;
        let out_field = format!("output `{}`", outputs[0].name());
        let (c, (h, w)) = (classes.len(), input_size);
        check_tensor(outputs[0].dtype(), [None, Some(c), Some(h), Some(w)])
            .map_err(|m| err(&out_field, format!("{m}; expected float32 [N, {c}, {h}, {w}] ({c} = number of {KEY_CLASSES}, {h},{w} = {KEY_INPUT_SIZE})")))?;

        Ok(ModelInfo {
            path: path.to_path_buf(),
            model_version,
            classes,
            input_size,
            padding,
            preprocess,
            preprocess_raw,
            modality,
            quantized: meta
                .custom(KEY_QUANTIZED)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            context_slices,
            input_name: inputs[0].name().to_string(),
            output_name: outputs[0].name().to_string(),
        })
    }
}

fn parse_size(s: &str) -> Option<(usize, usize)> {
    let (h, w) = s.split_once(',')?;
    let (h, w) = (h.trim().parse().ok()?, w.trim().parse().ok()?);
    (h > 0 && w > 0).then_some((h, w))
}

/// Checks a float32 rank-4 tensor type; `None` = any size, a dynamic (-1) dim is accepted.
fn check_tensor(ty: &ValueType, want: [Option<usize>; 4]) -> Result<(), String> {
    let ValueType::Tensor { ty, shape, .. } = ty else {
        return Err(format!("is not a tensor ({ty:?})"));
    };
    if *ty != TensorElementType::Float32 {
        return Err(format!("element type is {ty:?}, not float32"));
    }
    let dims: Vec<i64> = shape.iter().copied().collect();
    if dims.len() != 4 {
        return Err(format!("has rank {} (shape {dims:?}), not 4", dims.len()));
    }
    for (axis, (d, w)) in dims.iter().zip(want).enumerate() {
        if let Some(w) = w {
            if *d >= 0 && *d as usize != w {
                return Err(format!("dimension {axis} is {d} (shape {dims:?})"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preprocess_grammar() {
        assert_eq!(
            PreprocessStep::parse_list("hu_window:-100,400; equalize:256").unwrap(),
            vec![
                PreprocessStep::HuWindow {
                    lo: -100.0,
                    hi: 400.0
                },
                PreprocessStep::Equalize { bins: 256 }
            ]
        );
        assert_eq!(PreprocessStep::parse_list("none").unwrap(), vec![]);
        assert_eq!(
            PreprocessStep::parse_list("scale:0.002,0.2;liver_level:0.413").unwrap()[1],
            PreprocessStep::LiverLevel { level: 0.413 }
        );
        assert_eq!(
            PreprocessStep::parse_list("mr_norm:1,99;scale:2,-1").unwrap(),
            vec![
                PreprocessStep::MrNorm {
                    lo_percentile: 1.0,
                    hi_percentile: 99.0
                },
                PreprocessStep::Scale {
                    mul: 2.0,
                    add: -1.0
                }
            ]
        );
        for bad in [
            "",
            "hu_window:400,-100",
            "hu_window:1",
            "equalize:2.5",
            "blur:3",
            "mr_norm:5,101",
            "scale:a,b",
            "liver_level:",
            "liver_level:0.4,0.5",
        ] {
            assert!(PreprocessStep::parse_list(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn size_parsing() {
        assert_eq!(parse_size("388, 388"), Some((388, 388)));
        assert_eq!(parse_size("64,32"), Some((64, 32)));
        assert_eq!(parse_size("0,5"), None);
        assert_eq!(parse_size("64"), None);
        assert_eq!(parse_size("64,x"), None);
    }
}
