//! `fcn`: a fully convolutional network (ONNX, voxflow model contract) applied slice by slice.

use super::liver::{META_CLASSES, META_FULL_SLICE};
use ndarray::{Array3, ArrayView2};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use voxflow_onnx::{Device, FcnSession, ModelInfo, PreprocessStep};
use voxflow_runtime::decl::{ParamType, PortType};
use voxflow_runtime::params::{Bounds, ParamKind};
use voxflow_runtime::stream::{Header, SliceData, StreamType};
use voxflow_runtime::{BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeParams, Slice, TypedKind};

pub struct Fcn;

const DOCS: &str = r#"
Runs an ONNX segmentation model (contract: docs/MODELS.md) on every slice of an image stream
and outputs its class probabilities (`prob`, one channel per class; the class names travel in
the header metadata `classes`).

- The model is loaded when the graph is built, so a missing or invalid model file stops the
  graph before anything runs; errors name the model file.
- The input must be preprocessed as the model's `voxflow.preprocess` says. Where the stream
  declares a value range (e.g. `[0, 1]` after `equalize`, the window after `hu_window`) it must
  equal the range those steps produce, and a declared modality must match the model's;
  otherwise the node fails naming the model file.
- Each slice is resized to the model's input size (bilinear, `align_corners = false`), slices
  are run in batches of `batch`, and each class's probabilities are resized back to the
  slice grid (bilinear). Slices already at the model size pass through unresized.
- `workers` sessions run batches in parallel (one ONNX Runtime session per worker thread);
  `threads` is ONNX Runtime's intra-op thread count per session (0: the node's thread budget
  divided by `workers`).
- `device`: `cpu` never tries CUDA; `cuda` (device 0) or `cuda:N` fails if the CUDA execution
  provider cannot be used on that device; `auto` uses CUDA device 0 when it registers, else the
  CPU with one warning. The device and execution provider that ran are written into the node's
  entry of the run report (`--report`: `facts`) and the HTML report's run table.
- Slice metadata (e.g. the crop box from `crop_resample`) and header metadata pass through.
- A model with `voxflow.context_slices` r > 0 reads each slice between its r neighbours on
  either side (the volume's first and last slice stand in for those beyond its ends), so its
  output for slice k is sent once slice k + r has arrived. It needs every slice of a volume in
  order: a sparse stream or crops (`crop_resample`) are refused, naming the model file.
"#;

/// `device` param: `auto`, `cpu`, `cuda` or `cuda:N` (a string in the graph).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeviceParam(pub Device);

impl<'de> Deserialize<'de> for DeviceParam {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map(DeviceParam)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for DeviceParam {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl ParamKind for DeviceParam {
    fn param_type(_: &Bounds) -> ParamType {
        ParamType::Str
    }
}

/// Params of `fcn`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct FcnParams {
    /// ONNX model file (voxflow model contract)
    pub model: PathBuf,
    /// where to run: auto (CUDA device 0 if available, else CPU), cpu, cuda, cuda:N
    #[param(default = DeviceParam(Device::Auto))]
    pub device: DeviceParam,
    /// ONNX Runtime intra-op threads per session (0: automatic)
    #[param(default = 0)]
    pub threads: usize,
    /// slices per model call
    #[param(default = 4, min = 1)]
    pub batch: usize,
    /// parallel sessions (one per worker thread)
    #[param(default = 1, min = 1)]
    pub workers: usize,
}

impl TypedKind for Fcn {
    type Params = FcnParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            "fcn",
            "Slice-wise FCN inference with ONNX Runtime (image -> class probabilities)",
        )
        .docs(DOCS)
        .input(
            "in",
            PortType::Fixed(StreamType::Image),
            "preprocessed image",
        )
        .output(
            "prob",
            PortType::Fixed(StreamType::Prob),
            "class probabilities (C channels)",
        )
    }

    fn create(&self, p: FcnParams, env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        let device = p.device.0;
        let workers = p.workers.max(1);
        let threads = match p.threads {
            0 => (env.threads / workers).max(1),
            t => t,
        };
        let mut sessions = Vec::with_capacity(workers);
        for _ in 0..workers {
            sessions.push(
                FcnSession::new(&p.model, device, threads)
                    .map_err(|e| NodeError::msg(e.to_string()))?,
            );
        }
        Ok(Box::new(FcnNode {
            model: p.model,
            sessions,
            batch: p.batch.max(1),
        }))
    }
}

struct FcnNode {
    model: PathBuf,
    sessions: Vec<FcnSession>,
    batch: usize,
}

/// The value range that the model's preprocessing steps produce (`None`: not known in advance).
pub fn expected_range(steps: &[PreprocessStep]) -> Option<(f64, f64)> {
    let mut r = None;
    for s in steps {
        r = match *s {
            PreprocessStep::HuWindow { lo, hi } => Some((lo, hi)),
            PreprocessStep::MrNorm { .. } => None,
            PreprocessStep::Equalize { .. } => Some((0.0, 1.0)),
            PreprocessStep::Scale { mul, add } => r.map(|(a, b): (f64, f64)| {
                let (x, y) = (a * mul + add, b * mul + add);
                (x.min(y), x.max(y))
            }),
            PreprocessStep::LiverLevel { .. } => r,
        };
    }
    r
}

/// Checks what the stream says about its values against what the model expects.
pub fn check_preprocessing(info: &ModelInfo, h: &Header) -> Result<(), String> {
    let model = info.path.display();
    let modality = crate::meta::modality(h);
    if !modality.is_empty() && !modality.eq_ignore_ascii_case(&info.modality.to_string()) {
        return Err(format!(
            "model {model} is a {} model (voxflow.modality) but the input stream is {}",
            info.modality, modality
        ));
    }
    // The steps the stream records (hu_window, equalize, ... keep a chain) must be the model's.
    if let Some(chain) = h.meta.get(crate::meta::PREPROCESS).and_then(|v| v.as_str()) {
        let same = PreprocessStep::parse_list(chain).is_ok_and(|steps| {
            steps.len() == info.preprocess.len()
                && steps
                    .iter()
                    .zip(&info.preprocess)
                    .all(|(a, b)| a.matches(b))
        });
        if !same {
            return Err(format!(
                "model {model} expects input preprocessed as `{}`, but the input stream was \
                 preprocessed as `{chain}`; connect the preprocessing the model names \
                 (voxflow.preprocess, docs/MODELS.md)",
                info.preprocess_raw
            ));
        }
        return Ok(());
    }
    if let (Some((a, b)), Some((x, y))) = (expected_range(&info.preprocess), h.value_range) {
        let close = |u: f64, v: f64| (u - v).abs() <= 1e-6 * (1.0 + u.abs().max(v.abs()));
        if !(close(a, x) && close(b, y)) {
            return Err(format!(
                "model {model} expects input preprocessed as `{}` (values in [{a}, {b}]), but the \
                 input stream declares values in [{x}, {y}]; check the preprocessing nodes before this one",
                info.preprocess_raw
            ));
        }
    }
    Ok(())
}

/// The model's input for one output slice: the slice alone, or between its neighbours (the
/// output slice is the middle one).
type Stack = Vec<Arc<Slice>>;

/// Slices `k - r ..= k + r` from `recent` (consecutive slices, the last one received last),
/// indices clamped to `0 ..= ` the last received slice.
fn neighbours(recent: &VecDeque<Arc<Slice>>, k: usize, r: usize) -> Stack {
    let (first, last) = (recent[0].index, recent[recent.len() - 1].index);
    (k as isize - r as isize..=(k + r) as isize)
        .map(|j| Arc::clone(&recent[(j.max(0) as usize).min(last) - first]))
        .collect()
}

impl FcnNode {
    /// Runs `pending` stacks (up to `batch` per session, sessions in parallel) and emits the
    /// probabilities of their middle slices.
    fn flush(&mut self, ctx: &mut NodeCtx, pending: &mut Vec<Stack>) -> Result<(), NodeError> {
        if pending.is_empty() {
            return Ok(());
        }
        let batch = self.batch;
        let per = pending.len().div_ceil(self.sessions.len());
        let chunks: Vec<&[Stack]> = pending.chunks(per).collect();
        let results: Vec<Result<Vec<Array3<f32>>, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .sessions
                .iter_mut()
                .zip(&chunks)
                .map(|(sess, chunk)| {
                    scope.spawn(move || {
                        let views: Vec<Vec<ArrayView2<f32>>> = chunk
                            .iter()
                            .map(|stack| {
                                stack
                                    .iter()
                                    .map(|s| s.data.image().expect("image stream").view())
                                    .collect()
                            })
                            .collect();
                        sess.predict_slices(&views, batch)
                            .map_err(|e| e.to_string())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("worker panicked".into())))
                .collect()
        });
        let mut probs = Vec::with_capacity(pending.len());
        for r in results {
            probs.extend(r?);
        }
        for (stack, p) in pending.drain(..).zip(probs) {
            let s = &stack[stack.len() / 2];
            let mut out = Slice::new(s.index, SliceData::Prob(p));
            out.meta = s.meta.clone();
            ctx.send_slice("prob", out)?;
            ctx.tick();
        }
        Ok(())
    }
}

impl Node for FcnNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let h_in = ctx.header_of("in", StreamType::Image)?;
        let info = self.sessions[0].info().clone();
        check_preprocessing(&info, &h_in)?;
        ctx.set_fact("device", self.sessions[0].device().to_string());
        ctx.set_fact("provider", self.sessions[0].provider());
        let mut h = h_in.with_type(StreamType::Prob, info.num_classes());
        h.meta
            .insert(META_CLASSES.into(), info.classes.clone().into());
        h.meta
            .insert("model".into(), self.model.display().to_string().into());
        ctx.set_total(h.num_slices());
        ctx.send_header("prob", h)?;
        let r = info.context_slices;
        let model = self.model.display().to_string();
        let needs_all = |what: String| {
            NodeError::msg(format!(
                "model {model} reads {r} neighbouring slice(s) on each side (voxflow.context_slices) \
                 and needs every slice of the volume in order, but {what}"
            ))
        };
        if r > 0 && h_in.meta.contains_key(META_FULL_SLICE) {
            return Err(needs_all(
                "its input is crops of the slices (crop_resample)".into(),
            ));
        }
        let group = self.batch * self.sessions.len();
        let mut pending: Vec<Stack> = Vec::with_capacity(group);
        // Context models: the last 2r + 1 slices received, and the next slice to predict.
        let mut recent: VecDeque<Arc<Slice>> = VecDeque::with_capacity(2 * r + 1);
        let mut next = 0;
        while let Some(s) = ctx.next_slice("in")? {
            if r == 0 {
                pending.push(vec![s]);
            } else {
                let want = recent.back().map_or(0, |b| b.index + 1);
                if s.index != want {
                    return Err(needs_all(format!(
                        "slice {} came where slice {want} was due",
                        s.index
                    )));
                }
                if recent.len() == 2 * r + 1 {
                    recent.pop_front();
                }
                recent.push_back(s);
                while next + r <= want {
                    pending.push(neighbours(&recent, next, r));
                    next += 1;
                }
            }
            if pending.len() >= group {
                self.flush(ctx, &mut pending)?;
            }
        }
        if let Some(last) = recent.back().map(|b| b.index) {
            if last + 1 != h_in.num_slices() {
                return Err(needs_all(format!(
                    "the stream ended after slice {last} of {}",
                    h_in.num_slices()
                )));
            }
            while next <= last {
                pending.push(neighbours(&recent, next, r));
                next += 1;
            }
        }
        self.flush(ctx, &mut pending)?;
        ctx.end("prob")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_from_steps() {
        let p = |s: &str| PreprocessStep::parse_list(s).unwrap();
        assert_eq!(
            expected_range(&p("hu_window:-100,400;equalize:256")),
            Some((0.0, 1.0))
        );
        assert_eq!(
            expected_range(&p("hu_window:-100,400")),
            Some((-100.0, 400.0))
        );
        let (a, b) = expected_range(&p("hu_window:-100,400;scale:0.002,0.2")).unwrap();
        assert!(a.abs() < 1e-12 && (b - 1.0).abs() < 1e-12);
        assert_eq!(expected_range(&p("mr_norm:1,99")), None);
        assert_eq!(expected_range(&p("none")), None);
        assert_eq!(expected_range(&p("scale:-1,0")), None);
    }
}
