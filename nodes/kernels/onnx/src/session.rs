//! [`FcnSession`]: one ONNX Runtime session running a voxflow FCN on batches of slices.

use std::cell::Cell;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use ndarray::{s, Array2, Array3, Array4, ArrayView2, ArrayView4, Axis, Ix4};
use ort::ep;
use ort::session::{builder::SessionBuilder, Session};
use ort::value::TensorRef;

use crate::{FcnError, ModelInfo};

/// Where a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// CUDA device 0 if its execution provider registers, else CPU (one `tracing` warning per
    /// process).
    #[default]
    Auto,
    /// CPU only; never tries CUDA.
    Cpu,
    /// This CUDA device only; an error if it cannot be used.
    Cuda(u32),
}

impl std::str::FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            _ => lower
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("unknown device `{s}` (auto, cpu, cuda or cuda:N)")),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

static AUTO_FALLBACK_WARNED: AtomicBool = AtomicBool::new(false);

pub(crate) fn check_model_file(path: &Path) -> Result<(), FcnError> {
    if path.is_file() {
        Ok(())
    } else if path.is_dir() {
        Err(FcnError::ModelIsFolder {
            path: path.to_path_buf(),
        })
    } else {
        Err(FcnError::ModelNotFound {
            path: path.to_path_buf(),
        })
    }
}

/// A loaded, validated model. `run` takes `&mut self`: use one session per worker thread.
pub struct FcnSession {
    session: Session,
    info: ModelInfo,
    device: Device,
}

impl std::fmt::Debug for FcnSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcnSession")
            .field("info", &self.info)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl FcnSession {
    /// Loads `model` (loading ONNX Runtime first if needed) and validates its contract.
    ///
    /// `intra_threads`: ONNX Runtime intra-op threads; 0 = its default (all physical cores).
    pub fn new(
        model: impl AsRef<Path>,
        device: Device,
        intra_threads: usize,
    ) -> Result<FcnSession, FcnError> {
        let path = model.as_ref();
        check_model_file(path)?;
        crate::library::environment()?;
        let ort_err = |message: String| FcnError::Ort {
            path: path.to_path_buf(),
            message,
        };
        let (session, used) = match device {
            Device::Cpu => (
                build(path, intra_threads, None).map_err(ort_err)?,
                Device::Cpu,
            ),
            Device::Cuda(n) => match build(path, intra_threads, Some(n)) {
                Ok(s) => (s, Device::Cuda(n)),
                Err(message) => {
                    return Err(FcnError::Cuda {
                        path: path.to_path_buf(),
                        message,
                    })
                }
            },
            Device::Auto => match build(path, intra_threads, Some(0)) {
                Ok(s) => (s, Device::Cuda(0)),
                Err(cuda_err) => {
                    let session = build(path, intra_threads, None).map_err(ort_err)?;
                    if !AUTO_FALLBACK_WARNED.swap(true, Ordering::SeqCst) {
                        tracing::warn!(
                            model = %path.display(),
                            "CUDA is not available, running ONNX models on the CPU: {cuda_err}"
                        );
                    } else {
                        tracing::debug!(model = %path.display(), "CUDA unavailable, using CPU");
                    }
                    (session, Device::Cpu)
                }
            },
        };
        let info = ModelInfo::from_session(path, &session)?;
        Ok(FcnSession {
            session,
            info,
            device: used,
        })
    }

    /// The validated model contract.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The device actually used: `Cpu` or `Cuda(n)` (never `Auto`).
    pub fn device(&self) -> Device {
        self.device
    }

    /// The ONNX Runtime execution provider the session was built with.
    pub fn provider(&self) -> &'static str {
        match self.device {
            Device::Cuda(_) => "CUDAExecutionProvider",
            _ => "CPUExecutionProvider",
        }
    }

    /// Runs a batch `[N, 2r + 1, H, W]` (r = [`ModelInfo::context_slices`]) with `(H, W)` =
    /// [`ModelInfo::input_size`], already preprocessed and resized; the reflect padding of
    /// `voxflow.padding` is applied here (not by the caller).
    /// Returns `[N, C, H, W]` probabilities as produced by the model.
    pub fn run(&mut self, batch: ArrayView4<f32>) -> Result<Array4<f32>, FcnError> {
        let (h, w) = self.info.input_size;
        let (n, c) = (batch.shape()[0], self.info.num_classes());
        let ch = self.info.input_channels();
        if batch.shape()[1..] != [ch, h, w] {
            return Err(FcnError::Input {
                path: self.info.path.clone(),
                message: format!(
                    "batch has shape {:?}, the model takes [N, {ch}, {h}, {w}]",
                    batch.shape()
                ),
            });
        }
        if n == 0 {
            return Ok(Array4::zeros((0, c, h, w)));
        }
        let input = if self.info.padding > 0 {
            reflect_pad(batch, self.info.padding)
        } else {
            batch.as_standard_layout().into_owned()
        };
        let ort_err = |e: ort::Error| FcnError::Ort {
            path: self.info.path.clone(),
            message: e.to_string(),
        };
        let tensor = TensorRef::from_array_view(input.view()).map_err(ort_err)?;
        let outputs = self
            .session
            .run(ort::inputs![tensor])
            .map_err(|e| FcnError::Ort {
                path: self.info.path.clone(),
                message: e.to_string(),
            })?;
        let out = outputs[0]
            .try_extract_array::<f32>()
            .map_err(|e| FcnError::Ort {
                path: self.info.path.clone(),
                message: e.to_string(),
            })?;
        let got = out.shape().to_vec();
        let out = out
            .into_dimensionality::<Ix4>()
            .ok()
            .filter(|o| o.shape() == [n, c, h, w])
            .ok_or_else(|| FcnError::Model {
                path: self.info.path.clone(),
                field: format!("output `{}`", self.info.output_name),
                message: format!("produced shape {got:?}, expected [{n}, {c}, {h}, {w}]"),
            })?;
        Ok(out.to_owned())
    }
}

impl FcnSession {
    /// Convenience for whole slices of any size. Each input is the model's channels for one
    /// output slice: the slice alone, or with `context_slices` it between its neighbours (`2r + 1`
    /// slices of one size, in order). Each is resized to the model's input size with
    /// [`voxflow_volume::resize_bilinear`] (a view that several stacks share, once per call),
    /// inputs are run in batches of `batch_size`, and each class's probabilities are resized back
    /// to `(rows, cols)` (bilinear). Returns one `[C, rows, cols]` array per input, in order.
    pub fn predict_slices(
        &mut self,
        inputs: &[Vec<ArrayView2<f32>>],
        batch_size: usize,
    ) -> Result<Vec<Array3<f32>>, FcnError> {
        let (h, w) = self.info.input_size;
        let (c, ch) = (self.info.num_classes(), self.info.input_channels());
        let path = self.info.path.clone();
        let input_err = |message: String| FcnError::Input {
            path: path.clone(),
            message,
        };
        let mut out = Vec::with_capacity(inputs.len());
        // A context model's neighbouring stacks share slices: each view (data, shape, strides) is
        // resized once. One-slice inputs share nothing, so nothing is kept for them.
        type ViewKey = (usize, (usize, usize), (isize, isize));
        let mut resized: HashMap<ViewKey, Array2<f32>> = HashMap::new();
        for chunk in inputs.chunks(batch_size.max(1)) {
            let mut batch = Array4::<f32>::zeros((chunk.len(), ch, h, w));
            for (i, stack) in chunk.iter().enumerate() {
                if stack.len() != ch {
                    return Err(input_err(format!(
                        "{} slices given for one output slice, the model reads {ch}",
                        stack.len()
                    )));
                }
                for (k, sl) in stack.iter().enumerate() {
                    if sl.is_empty() {
                        return Err(input_err("empty slice".into()));
                    }
                    if sl.dim() != stack[0].dim() {
                        return Err(input_err(format!(
                            "neighbouring slices differ in size ({:?} and {:?})",
                            stack[0].dim(),
                            sl.dim()
                        )));
                    }
                    let mut dst = batch.slice_mut(s![i, k, .., ..]);
                    if ch == 1 {
                        dst.assign(&voxflow_volume::resize_bilinear(sl.view(), h, w));
                        continue;
                    }
                    let strides = sl.strides();
                    let key = (sl.as_ptr() as usize, sl.dim(), (strides[0], strides[1]));
                    dst.assign(
                        resized
                            .entry(key)
                            .or_insert_with(|| voxflow_volume::resize_bilinear(sl.view(), h, w)),
                    );
                }
            }
            let prob = self.run(batch.view())?;
            for (stack, p) in chunk.iter().zip(prob.outer_iter()) {
                let (rows, cols) = stack[0].dim();
                let mut back = Array3::<f32>::zeros((c, rows, cols));
                for (mut dst, src) in back.outer_iter_mut().zip(p.axis_iter(Axis(0))) {
                    dst.assign(&voxflow_volume::resize_bilinear(src, rows, cols));
                }
                out.push(back);
            }
        }
        Ok(out)
    }
}

/// Builds an ONNX Runtime session; the error is ONNX Runtime's message.
/// A session on the CPU, or with the CUDA execution provider on device `cuda` (an error if it
/// does not register).
fn build(path: &Path, intra_threads: usize, cuda: Option<u32>) -> Result<Session, String> {
    let (_, env) = crate::library::environment().map_err(|e| e.to_string())?;
    let err = |e: ort::Error<SessionBuilder>| e.to_string();
    let mut b = Session::builder(env).map_err(|e| e.to_string())?;
    if intra_threads > 0 {
        b = b.with_intra_threads(intra_threads).map_err(err)?;
    }
    if let Some(id) = cuda {
        let id = i32::try_from(id).map_err(|_| format!("CUDA device {id} does not exist"))?;
        b = b
            .with_execution_providers([ep::CUDA::default()
                .with_device_id(id)
                .build()
                .error_on_failure()])
            .map_err(err)?;
    }
    commit_quietly(b, path)
}

thread_local! {
    /// Set while [`commit_quietly`] runs on this thread: its panic is reported, not printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Opens the model file. The `ort` binding panics on some models ONNX Runtime itself accepts,
/// e.g. when shape inference gives an output a negative dimension ("dim_values must be -1
/// (symbolic dimension) or larger"); that panic becomes this error, and is not printed.
pub(crate) fn commit_quietly(b: SessionBuilder, path: &Path) -> Result<Session, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let mut b = b;
    QUIET.with(|q| q.set(true));
    let r = catch_unwind(AssertUnwindSafe(move || b.commit_from_file(path)));
    QUIET.with(|q| q.set(false));
    match r {
        Ok(session) => session.map_err(|e| e.to_string()),
        Err(p) => {
            let text = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            // The binding's text is a Debug dump; its `message: "..."` part is ONNX Runtime's.
            let message = text
                .split_once("message: \"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map_or(text.as_str(), |(m, _)| m);
            Err(format!(
                "the model's inputs and outputs cannot be described: {message}"
            ))
        }
    }
}

/// Reflect padding (mirror without repeating the edge, as numpy `mode="reflect"` and
/// PyTorch `ReflectionPad2d`) of `p` px on each side of the last two axes. Needs `p < H, W`.
pub fn reflect_pad(x: ArrayView4<f32>, p: usize) -> Array4<f32> {
    let (n, c, h, w) = x.dim();
    assert!(p < h && p < w, "reflect padding {p} needs H, W > {p}");
    let reflect = |i: isize, len: usize| -> usize {
        let len = len as isize;
        let i = if i < 0 { -i } else { i };
        (if i >= len { 2 * (len - 1) - i } else { i }) as usize
    };
    let (ph, pw) = (h + 2 * p, w + 2 * p);
    let rows: Vec<usize> = (0..ph)
        .map(|y| reflect(y as isize - p as isize, h))
        .collect();
    let cols: Vec<usize> = (0..pw)
        .map(|x| reflect(x as isize - p as isize, w))
        .collect();
    let mut out = Array4::zeros((n, c, ph, pw));
    for b in 0..n {
        for ch in 0..c {
            let src = x.slice(s![b, ch, .., ..]);
            let mut dst = out.slice_mut(s![b, ch, .., ..]);
            for (y, &sy) in rows.iter().enumerate() {
                for (xx, &sx) in cols.iter().enumerate() {
                    dst[[y, xx]] = src[[sy, sx]];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn reflect_pad_matches_numpy_reflect() {
        // np.pad(np.arange(12).reshape(3,4), 2, mode="reflect") first two rows:
        // [[10,9,8,9,10,11,10,9],[6,5,4,5,6,7,6,5]]
        let x = Array::from_shape_fn((1, 1, 3, 4), |(_, _, y, x)| (y * 4 + x) as f32);
        let p = reflect_pad(x.view(), 2);
        assert_eq!(p.dim(), (1, 1, 7, 8));
        let row = |r: usize| p.slice(s![0, 0, r, ..]).to_vec();
        assert_eq!(row(0), vec![10., 9., 8., 9., 10., 11., 10., 9.]);
        assert_eq!(row(1), vec![6., 5., 4., 5., 6., 7., 6., 5.]);
        assert_eq!(row(2), vec![2., 1., 0., 1., 2., 3., 2., 1.]);
        assert_eq!(row(6), vec![2., 1., 0., 1., 2., 3., 2., 1.]);
        assert_eq!(p.slice(s![0, 0, 2..5, 2..6]), x.slice(s![0, 0, .., ..]));
    }

    #[test]
    fn device_parsing() {
        assert_eq!("AUTO".parse::<Device>().unwrap(), Device::Auto);
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("CUDA:3".parse::<Device>().unwrap(), Device::Cuda(3));
        assert_eq!(Device::Cuda(3).to_string(), "cuda:3");
        assert!("cuda:".parse::<Device>().is_err());
        assert!("cuda:-1".parse::<Device>().is_err());
        assert!("tpu".parse::<Device>().is_err());
    }
}
