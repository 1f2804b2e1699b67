//! A plugin kind as a runtime `NodeKind`: the node gathers its inputs, calls the plugin once on
//! whole volumes, and streams the outputs.

use ndarray::{Array3, Array4};
use serde_json::Value;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use voxflow_plugin_abi as abi;
use voxflow_runtime::decl::{ParamType, PortType};
use voxflow_runtime::stream::{StreamType, VolumeData};
use voxflow_runtime::{
    BuildEnv, Header, Node, NodeCtx, NodeDecl, NodeError, NodeKind, Params, Volume,
};

/// One node kind of a loaded plugin.
pub struct PluginKind {
    pub(crate) decl: NodeDecl,
    pub(crate) run: abi::VfRunFn,
    /// `user_data` of the kind (an address; the plugin owns it for the life of the process).
    pub(crate) user_data: usize,
    /// The library path, for messages.
    pub(crate) library: String,
}

impl NodeKind for PluginKind {
    fn decl(&self) -> NodeDecl {
        self.decl.clone()
    }

    fn build(&self, params: &Params, env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        let mut values = Vec::new();
        for p in &self.decl.params {
            values.push(ParamSlot::new(p.name.as_str(), &p.ty, params.get(&p.name))?);
        }
        Ok(Box::new(PluginNode {
            decl: self.decl.clone(),
            run: self.run,
            user_data: self.user_data,
            library: self.library.clone(),
            params: values,
            threads: env.threads.max(1),
        }))
    }
}

/// A param value with the strings its `VfParam` points to.
struct ParamSlot {
    name: CString,
    kind: u32,
    int_value: i64,
    float_value: f64,
    text: CString,
}

fn cstring(s: &str) -> Result<CString, NodeError> {
    CString::new(s).map_err(|_| {
        NodeError::msg(format!(
            "`{}` contains a NUL character",
            s.replace('\0', "\\0")
        ))
    })
}

impl ParamSlot {
    fn new(name: &str, ty: &ParamType, v: Option<&Value>) -> Result<Self, NodeError> {
        let (kind, int_value, float_value, text) = match v {
            None => (abi::PARAM_UNSET, 0, 0.0, "null".to_string()),
            Some(Value::Bool(b)) => (abi::PARAM_BOOL, *b as i64, *b as i64 as f64, b.to_string()),
            Some(Value::Number(n)) if matches!(ty, ParamType::Int { .. }) => {
                let i = n
                    .as_i64()
                    .ok_or_else(|| NodeError::msg(format!("param `{name}` must be an integer")))?;
                (abi::PARAM_INT, i, i as f64, n.to_string())
            }
            Some(Value::Number(n)) => (
                abi::PARAM_FLOAT,
                0,
                n.as_f64().unwrap_or(f64::NAN),
                n.to_string(),
            ),
            Some(Value::String(s)) => (abi::PARAM_STRING, 0, 0.0, s.clone()),
            Some(other) => (abi::PARAM_LIST, 0, 0.0, other.to_string()),
        };
        Ok(ParamSlot {
            name: cstring(name)?,
            kind,
            int_value,
            float_value,
            text: cstring(&text)?,
        })
    }

    fn raw(&self) -> abi::VfParam {
        abi::VfParam {
            name: self.name.as_ptr(),
            kind: self.kind,
            int_value: self.int_value,
            float_value: self.float_value,
            text: self.text.as_ptr(),
        }
    }
}

struct PluginNode {
    decl: NodeDecl,
    run: abi::VfRunFn,
    user_data: usize,
    library: String,
    params: Vec<ParamSlot>,
    threads: usize,
}

enum OutBuf {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

/// What the host callbacks see during one call.
struct CallState {
    /// Declared output types (`None` = any).
    out_types: Vec<(String, Option<StreamType>)>,
    outputs: Vec<Option<(abi::VfVolume, OutBuf)>>,
    /// Message from `set_error`.
    error: Option<String>,
    /// Why the host refused an allocation (reported even if the plugin ignores the NULL).
    refused: Option<String>,
}

fn stream_of(code: u32) -> Option<StreamType> {
    match code {
        abi::STREAM_IMAGE => Some(StreamType::Image),
        abi::STREAM_LABEL => Some(StreamType::Label),
        abi::STREAM_PROB => Some(StreamType::Prob),
        _ => None,
    }
}

fn code_of(t: StreamType) -> u32 {
    match t {
        StreamType::Image => abi::STREAM_IMAGE,
        StreamType::Label => abi::STREAM_LABEL,
        StreamType::Prob => abi::STREAM_PROB,
    }
}

impl CallState {
    fn alloc(&mut self, port: u32, desc: &abi::VfVolume) -> Result<*mut c_void, String> {
        let port = port as usize;
        let (name, declared) = self.out_types.get(port).cloned().ok_or_else(|| {
            format!(
                "output {port} does not exist (the kind declares {})",
                self.out_types.len()
            )
        })?;
        if self.outputs[port].is_some() {
            return Err(format!("output `{name}` was allocated twice"));
        }
        let ty = stream_of(desc.stream_type).ok_or_else(|| {
            format!(
                "output `{name}`: unknown stream type code {}",
                desc.stream_type
            )
        })?;
        if declared.is_some_and(|d| d != ty) {
            return Err(format!(
                "output `{name}` is declared {}, the plugin allocated {ty}",
                declared.expect("some")
            ));
        }
        let want_dtype = if ty == StreamType::Label {
            abi::DTYPE_U8
        } else {
            abi::DTYPE_F32
        };
        if desc.dtype != want_dtype {
            return Err(format!(
                "output `{name}`: a {ty} volume needs dtype {want_dtype}, got {}",
                desc.dtype
            ));
        }
        let [nk, c, nj, ni] = desc.shape;
        if nk == 0 || c == 0 || nj == 0 || ni == 0 || (ty != StreamType::Prob && c != 1) {
            return Err(format!(
                "output `{name}`: bad shape {:?} for a {ty} volume",
                desc.shape
            ));
        }
        if !desc.spacing.iter().all(|s| s.is_finite() && *s > 0.0)
            || !desc.affine.iter().all(|a| a.is_finite())
        {
            return Err(format!(
                "output `{name}`: spacing and affine must be finite (spacing > 0)"
            ));
        }
        let len = desc
            .shape
            .iter()
            .try_fold(1usize, |a, &d| {
                usize::try_from(d).ok().and_then(|d| a.checked_mul(d))
            })
            .ok_or_else(|| format!("output `{name}`: shape {:?} is too large", desc.shape))?;
        let oom = |_| format!("output `{name}`: cannot allocate {len} voxels");
        let mut buf = if ty == StreamType::Label {
            let mut v: Vec<u8> = Vec::new();
            v.try_reserve_exact(len).map_err(oom)?;
            v.resize(len, 0);
            OutBuf::U8(v)
        } else {
            let mut v: Vec<f32> = Vec::new();
            v.try_reserve_exact(len).map_err(oom)?;
            v.resize(len, 0.0);
            OutBuf::F32(v)
        };
        let ptr = match &mut buf {
            OutBuf::U8(v) => v.as_mut_ptr() as *mut c_void,
            OutBuf::F32(v) => v.as_mut_ptr() as *mut c_void,
        };
        let mut d = *desc;
        d.data = ptr;
        d.len = len as u64;
        self.outputs[port] = Some((d, buf));
        Ok(ptr)
    }
}

unsafe extern "C" fn host_alloc(
    ctx: *mut c_void,
    port: u32,
    desc: *const abi::VfVolume,
) -> *mut c_void {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `ctx` is the `CallState` of the running call; `desc` is the plugin's struct.
        let state = &mut *(ctx as *mut CallState);
        if desc.is_null() {
            state.refused = Some("alloc_output was given no description".into());
            return std::ptr::null_mut();
        }
        match state.alloc(port, &*desc) {
            Ok(p) => p,
            Err(e) => {
                state.refused.get_or_insert(e);
                std::ptr::null_mut()
            }
        }
    }));
    r.unwrap_or(std::ptr::null_mut())
}

unsafe extern "C" fn host_set_error(ctx: *mut c_void, message: *const c_char) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as above; `message` is a NUL-terminated string or NULL.
        let state = &mut *(ctx as *mut CallState);
        state.error = Some(if message.is_null() {
            "(no message)".into()
        } else {
            CStr::from_ptr(message).to_string_lossy().into_owned()
        });
    }));
}

fn raw_volume(v: &Volume) -> (abi::VfVolume, Option<OutBuf>) {
    let h = &v.header;
    let mut r = abi::VfVolume::empty();
    r.stream_type = code_of(h.stream_type);
    r.shape = [
        h.shape[0] as u64,
        h.channels as u64,
        h.shape[1] as u64,
        h.shape[2] as u64,
    ];
    r.spacing = h.spacing;
    for (n, a) in h.affine.iter().flatten().enumerate() {
        r.affine[n] = *a;
    }
    // Gathered volumes are in standard layout; a copy covers any other case.
    let mut copy = match &v.data {
        VolumeData::Label(a) => a
            .as_slice()
            .is_none()
            .then(|| OutBuf::U8(a.iter().copied().collect())),
        VolumeData::Image(a) => a
            .as_slice()
            .is_none()
            .then(|| OutBuf::F32(a.iter().copied().collect())),
        VolumeData::Prob(a) => a
            .as_slice()
            .is_none()
            .then(|| OutBuf::F32(a.iter().copied().collect())),
    };
    let (ptr, len) = match (&v.data, &mut copy) {
        (_, Some(OutBuf::U8(c))) => (c.as_mut_ptr() as *mut c_void, c.len()),
        (_, Some(OutBuf::F32(c))) => (c.as_mut_ptr() as *mut c_void, c.len()),
        (VolumeData::Label(a), None) => (a.as_ptr() as *mut c_void, a.len()),
        (VolumeData::Image(a), None) => (a.as_ptr() as *mut c_void, a.len()),
        (VolumeData::Prob(a), None) => (a.as_ptr() as *mut c_void, a.len()),
    };
    r.dtype = if h.stream_type == StreamType::Label {
        abi::DTYPE_U8
    } else {
        abi::DTYPE_F32
    };
    r.data = ptr;
    r.len = len as u64;
    (r, copy)
}

impl PluginNode {
    fn call(&self, inputs: &[abi::VfVolume], state: &mut CallState) -> i32 {
        let params: Vec<abi::VfParam> = self.params.iter().map(ParamSlot::raw).collect();
        let host = abi::VfHost {
            ctx: state as *mut CallState as *mut c_void,
            threads: self.threads.min(u32::MAX as usize) as u32,
            alloc_output: host_alloc,
            set_error: host_set_error,
        };
        // SAFETY: the plugin's run function with the arguments the ABI describes; every
        // pointer stays valid until it returns.
        unsafe {
            (self.run)(
                self.user_data as *const c_void,
                &host,
                params.as_ptr(),
                params.len() as u32,
                inputs.as_ptr(),
                inputs.len() as u32,
            )
        }
    }

    fn library_name(&self) -> &str {
        std::path::Path::new(&self.library)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(&self.library)
    }
}

impl Node for PluginNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let connected: Vec<&str> = self
            .decl
            .inputs
            .iter()
            .map(|p| p.name.as_str())
            .filter(|p| ctx.has_input(p))
            .collect();
        let vols = ctx.gather_many(&connected)?;
        let mut raw = Vec::new();
        let mut copies = Vec::new();
        let mut first: Option<&Volume> = None;
        for p in &self.decl.inputs {
            match connected.iter().position(|c| *c == p.name) {
                Some(n) => {
                    let v = &vols[n];
                    if let PortType::Fixed(t) = p.ty {
                        if v.header.stream_type != t {
                            return Err(NodeError::msg(format!(
                                "input `{}` carries a {} stream, this node needs {t}",
                                p.name, v.header.stream_type
                            )));
                        }
                    }
                    let (r, copy) = raw_volume(v);
                    raw.push(r);
                    copies.push(copy);
                    first.get_or_insert(v);
                }
                None => raw.push(abi::VfVolume::empty()),
            }
        }
        let mut state = CallState {
            out_types: self
                .decl
                .outputs
                .iter()
                .map(|p| {
                    let t = match p.ty {
                        PortType::Fixed(t) => Some(t),
                        _ => None,
                    };
                    (p.name.clone(), t)
                })
                .collect(),
            outputs: (0..self.decl.outputs.len()).map(|_| None).collect(),
            error: None,
            refused: None,
        };
        let status = self.call(&raw, &mut state);
        drop(copies);
        // A refused allocation explains a failure better than the plugin's own message.
        let message = match (state.error.take(), &state.refused) {
            (Some(m), Some(r)) if status != abi::STATUS_OK => {
                Some(format!("{m} (the host refused: {r})"))
            }
            (None, Some(r)) if status != abi::STATUS_OK => Some(format!("the host refused: {r}")),
            (m, _) => m,
        };
        match status {
            abi::STATUS_OK => {}
            abi::STATUS_ERROR => {
                return Err(NodeError::msg(message.unwrap_or_else(|| {
                    format!("plugin {} failed without a message", self.library_name())
                })))
            }
            abi::STATUS_PANIC => {
                let m = message.unwrap_or_default();
                return Err(NodeError::msg(format!(
                    "plugin {} panicked: {}",
                    self.library_name(),
                    m.strip_prefix("panicked: ").unwrap_or(&m)
                )));
            }
            s => {
                return Err(NodeError::msg(format!(
                    "plugin {} returned unknown status {s}{}",
                    self.library_name(),
                    message.map(|m| format!(": {m}")).unwrap_or_default()
                )))
            }
        }
        if let Some(r) = state.refused.take() {
            return Err(NodeError::msg(format!(
                "plugin {}: {r}",
                self.library_name()
            )));
        }
        let mut outs = Vec::new();
        for (n, o) in state.outputs.into_iter().enumerate() {
            let (d, buf) = o.ok_or_else(|| {
                NodeError::msg(format!(
                    "plugin {} returned success without allocating output `{}`",
                    self.library_name(),
                    self.decl.outputs[n].name
                ))
            })?;
            outs.push(volume_from(&d, buf, first)?);
        }
        for (n, v) in outs.iter().enumerate() {
            let name = self.decl.outputs[n].name.clone();
            ctx.emit_volume(&name, v)?;
        }
        Ok(())
    }
}

/// Wraps an output buffer as a volume; metadata travels on from the first input.
fn volume_from(
    d: &abi::VfVolume,
    buf: OutBuf,
    first: Option<&Volume>,
) -> Result<Volume, NodeError> {
    let ty = stream_of(d.stream_type).expect("checked at allocation");
    let [nk, c, nj, ni] = d.shape.map(|v| v as usize);
    let mut header = Header::new(ty, [nk, nj, ni], d.spacing);
    header.channels = c;
    for (n, a) in d.affine.iter().enumerate() {
        header.affine[n / 4][n % 4] = *a;
    }
    let bad = |e: ndarray::ShapeError| {
        NodeError::msg(format!("output buffer does not fit its shape: {e}"))
    };
    let data = match (ty, buf) {
        (StreamType::Label, OutBuf::U8(v)) => {
            VolumeData::Label(Array3::from_shape_vec((nk, nj, ni), v).map_err(bad)?)
        }
        (StreamType::Image, OutBuf::F32(v)) => {
            VolumeData::Image(Array3::from_shape_vec((nk, nj, ni), v).map_err(bad)?)
        }
        (StreamType::Prob, OutBuf::F32(v)) => {
            VolumeData::Prob(Array4::from_shape_vec((nk, c, nj, ni), v).map_err(bad)?)
        }
        _ => unreachable!("dtype checked at allocation"),
    };
    let mut vol = Volume::new(header, data);
    if let Some(f) = first {
        vol.header.modality = f.header.modality.clone();
        vol.header.meta = f.header.meta.clone();
        // What the plugin did to the intensities is unknown here.
        vol.header.meta.remove(voxflow_runtime::META_PREPROCESS);
        if f.header.shape[0] == nk {
            vol.slice_meta = f.slice_meta.clone();
        }
    }
    Ok(vol)
}
