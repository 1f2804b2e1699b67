//! A plugin kind as a runtime `NodeKind`. A streaming kind gets slice k of every input as it
//! arrives and sends its output slices on at once; a whole-volume kind gets its inputs gathered,
//! is called once, and its outputs are streamed.

use ndarray::{Array, Array2, Array3, Array4, Dimension};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use voxflow_plugin_abi as abi;
use voxflow_runtime::decl::{ParamType, PortType};
use voxflow_runtime::stream::{Meta, SliceData, StreamType, VolumeData};
use voxflow_runtime::{
    BuildEnv, Header, Node, NodeCtx, NodeDecl, NodeError, NodeKind, Params, Slice, Volume,
};

/// One node kind of a loaded plugin.
pub struct PluginKind {
    pub(crate) decl: NodeDecl,
    pub(crate) body: KindBody,
    /// The library path, for messages.
    pub(crate) library: String,
}

/// The functions of a kind. `user_data` is an address the plugin owns for the process life.
#[derive(Clone, Copy)]
pub(crate) enum KindBody {
    Volume {
        run: abi::VfRunFn,
        user_data: usize,
    },
    Stream {
        start: abi::VfStartFn,
        slice: abi::VfSliceFn,
        finish: abi::VfFinishFn,
        user_data: usize,
    },
}

impl KindBody {
    /// The body of a table entry: `run`, or all three streaming functions, never both.
    pub(crate) fn of(k: &abi::VfKind) -> Result<Self, String> {
        let user_data = k.user_data as usize;
        match (k.run, k.start, k.slice, k.finish) {
            (Some(run), None, None, None) => Ok(KindBody::Volume { run, user_data }),
            (None, Some(start), Some(slice), Some(finish)) => Ok(KindBody::Stream {
                start,
                slice,
                finish,
                user_data,
            }),
            (Some(_), ..) => Err(
                "sets both `run` (whole volumes) and streaming functions; a kind does one or the other"
                    .into(),
            ),
            (None, None, None, None) => {
                Err("has neither `run` nor the streaming functions `start`, `slice`, `finish`".into())
            }
            (None, start, slice, finish) => {
                let missing: Vec<&str> = [
                    ("start", start.is_none()),
                    ("slice", slice.is_none()),
                    ("finish", finish.is_none()),
                ]
                .iter()
                .filter(|(_, m)| *m)
                .map(|(n, _)| *n)
                .collect();
                Err(format!(
                    "streams but has no `{}` function (a streaming kind needs `start`, `slice` and `finish`)",
                    missing.join("`, `")
                ))
            }
        }
    }
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
            body: self.body,
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
    body: KindBody,
    library: String,
    params: Vec<ParamSlot>,
    threads: usize,
}

enum OutBuf {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

/// Which plugin function is running, for the host callbacks.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Phase {
    /// `run` of a whole-volume kind: `alloc_output`.
    Whole,
    /// `start`: `open_output`.
    Start,
    /// `slice`, or `finish` after the last slice: `emit_slice`.
    Emit,
    /// `finish` of a stopped run: nothing.
    #[default]
    Stopped,
}

/// An output a streaming call opened.
struct OpenOutput {
    desc: abi::VfVolume,
    /// Elements of one slice.
    slice_len: usize,
    /// Slice indices sent so far, increasing.
    sent: Vec<usize>,
}

/// What the host callbacks see during one node run (by default: a stopped run's `finish`).
#[derive(Default)]
struct CallState {
    phase: Phase,
    /// Declared output types (`None` = any).
    out_types: Vec<(String, Option<StreamType>)>,
    outputs: Vec<Option<(abi::VfVolume, OutBuf)>>,
    opened: Vec<Option<OpenOutput>>,
    /// Slices emitted during the current call: (port, k, voxels).
    emitted: Vec<(usize, usize, OutBuf)>,
    /// Message from `set_error`.
    error: Option<String>,
    /// Why the host refused a request (reported even if the plugin ignores the refusal).
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
    fn new(decl: &NodeDecl, phase: Phase) -> Self {
        let n = decl.outputs.len();
        CallState {
            phase,
            out_types: decl
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
            outputs: (0..n).map(|_| None).collect(),
            opened: (0..n).map(|_| None).collect(),
            emitted: Vec::new(),
            error: None,
            refused: None,
        }
    }

    /// Checks an output request against the declaration: the port's name, stream type and
    /// element count.
    fn check_desc(
        &self,
        port: usize,
        desc: &abi::VfVolume,
    ) -> Result<(String, StreamType, usize), String> {
        let (name, declared) = self.out_types.get(port).cloned().ok_or_else(|| {
            format!(
                "output {port} does not exist (the kind declares {})",
                self.out_types.len()
            )
        })?;
        let ty = stream_of(desc.stream_type).ok_or_else(|| {
            format!(
                "output `{name}`: unknown stream type code {}",
                desc.stream_type
            )
        })?;
        if declared.is_some_and(|d| d != ty) {
            return Err(format!(
                "output `{name}` is declared {}, the plugin requested {ty}",
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
        Ok((name, ty, len))
    }

    fn alloc(&mut self, port: u32, desc: &abi::VfVolume) -> Result<*mut c_void, String> {
        let port = port as usize;
        if self.phase != Phase::Whole {
            return Err("alloc_output is for whole-volume kinds; a streaming kind opens its outputs with open_output".into());
        }
        let (name, ty, len) = self.check_desc(port, desc)?;
        if self.outputs[port].is_some() {
            return Err(format!("output `{name}` was allocated twice"));
        }
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

    fn open(&mut self, port: u32, desc: &abi::VfVolume) -> Result<(), String> {
        let port = port as usize;
        if self.phase != Phase::Start {
            return Err("open_output is for streaming kinds, during `start`".into());
        }
        let (name, _, _) = self.check_desc(port, desc)?;
        if self.opened[port].is_some() {
            return Err(format!("output `{name}` was opened twice"));
        }
        let [_, c, nj, ni] = desc.shape.map(|v| v as usize);
        let mut d = *desc;
        d.data = std::ptr::null_mut();
        d.len = 0;
        self.opened[port] = Some(OpenOutput {
            desc: d,
            slice_len: c * nj * ni,
            sent: Vec::new(),
        });
        Ok(())
    }

    fn emit(&mut self, port: u32, k: u64, data: *const c_void, len: u64) -> Result<(), String> {
        let port = port as usize;
        if self.phase != Phase::Emit {
            return Err(
                "emit_slice is for streaming kinds, during `slice` and a completed `finish`".into(),
            );
        }
        let name = self
            .out_types
            .get(port)
            .map(|(n, _)| n.clone())
            .ok_or_else(|| format!("output {port} does not exist"))?;
        let out = self.opened[port]
            .as_mut()
            .ok_or_else(|| format!("output `{name}` was not opened"))?;
        let nk = out.desc.shape[0];
        if k >= nk {
            return Err(format!(
                "output `{name}` has {nk} slices, the plugin sent slice {k}"
            ));
        }
        let k = k as usize;
        if let Some(&last) = out.sent.last().filter(|&&l| k <= l) {
            return Err(format!(
                "output `{name}`: slice {k} sent after slice {last} (slices go in increasing order, each once)"
            ));
        }
        if len as usize != out.slice_len || data.is_null() {
            return Err(format!(
                "output `{name}`: a slice has {} elements, the plugin sent {len}",
                out.slice_len
            ));
        }
        // SAFETY: the plugin passes `len` elements of the output's dtype, valid for this call.
        let buf = unsafe {
            if out.desc.dtype == abi::DTYPE_U8 {
                OutBuf::U8(std::slice::from_raw_parts(data as *const u8, out.slice_len).to_vec())
            } else {
                OutBuf::F32(std::slice::from_raw_parts(data as *const f32, out.slice_len).to_vec())
            }
        };
        out.sent.push(k);
        self.emitted.push((port, k, buf));
        Ok(())
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

unsafe extern "C" fn host_open(ctx: *mut c_void, port: u32, desc: *const abi::VfVolume) -> i32 {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as in `host_alloc`.
        let state = &mut *(ctx as *mut CallState);
        let r = if desc.is_null() {
            Err("open_output was given no description".into())
        } else {
            state.open(port, &*desc)
        };
        match r {
            Ok(()) => abi::STATUS_OK,
            Err(e) => {
                state.refused.get_or_insert(e);
                abi::STATUS_ERROR
            }
        }
    }));
    r.unwrap_or(abi::STATUS_ERROR)
}

unsafe extern "C" fn host_emit(
    ctx: *mut c_void,
    port: u32,
    k: u64,
    data: *const c_void,
    len: u64,
) -> i32 {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as in `host_alloc`.
        let state = &mut *(ctx as *mut CallState);
        match state.emit(port, k, data, len) {
            Ok(()) => abi::STATUS_OK,
            Err(e) => {
                state.refused.get_or_insert(e);
                abi::STATUS_ERROR
            }
        }
    }));
    r.unwrap_or(abi::STATUS_ERROR)
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

/// A gathered volume as a `vf_volume`, with the elements its pointer refers to.
fn raw_volume(v: &Volume) -> (abi::VfVolume, Elements<'_>) {
    let mut r = raw_geometry(&v.header);
    let elements = match &v.data {
        VolumeData::Label(a) => Elements::U8(c_order(a)),
        VolumeData::Image(a) => Elements::F32(c_order(a)),
        VolumeData::Prob(a) => Elements::F32(c_order(a)),
    };
    let (data, len, _) = elements.raw();
    r.data = data as *mut c_void;
    r.len = len as u64;
    (r, elements)
}

/// Elements in C order, lent to a plugin call: borrowed when the array is contiguous, else a copy.
enum Elements<'a> {
    U8(Cow<'a, [u8]>),
    F32(Cow<'a, [f32]>),
}

impl Elements<'_> {
    /// Pointer, element count and dtype.
    fn raw(&self) -> (*const c_void, usize, u32) {
        match self {
            Elements::U8(e) => (e.as_ptr() as *const c_void, e.len(), abi::DTYPE_U8),
            Elements::F32(e) => (e.as_ptr() as *const c_void, e.len(), abi::DTYPE_F32),
        }
    }
}

fn c_order<T: Copy, D: Dimension>(a: &Array<T, D>) -> Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().copied().collect()),
    }
}

/// The geometry of a stream as a `vf_volume` without data (streaming `start`).
fn raw_geometry(h: &Header) -> abi::VfVolume {
    let mut r = abi::VfVolume::empty();
    r.stream_type = code_of(h.stream_type);
    r.dtype = if h.stream_type == StreamType::Label {
        abi::DTYPE_U8
    } else {
        abi::DTYPE_F32
    };
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
    r
}

/// One input slice as a `vf_slice`, with the elements its pointer refers to.
fn raw_slice(s: &Slice) -> (abi::VfSlice, Elements<'_>) {
    let elements = match &s.data {
        SliceData::Label(a) => Elements::U8(c_order(a)),
        SliceData::Image(a) => Elements::F32(c_order(a)),
        SliceData::Prob(a) => Elements::F32(c_order(a)),
    };
    let (data, len, dtype) = elements.raw();
    (
        abi::VfSlice {
            data,
            len: len as u64,
            dtype,
        },
        elements,
    )
}

/// Calls `finish` with `FINISH_STOPPED` when dropped before the run completed, so that the
/// plugin frees its state whatever stopped the node.
struct StreamState {
    finish: abi::VfFinishFn,
    state: *mut c_void,
    threads: u32,
    completed: bool,
}

impl Drop for StreamState {
    fn drop(&mut self) {
        if self.completed {
            return;
        }
        let mut closed = CallState::default();
        let host = host_table(&mut closed, self.threads);
        // SAFETY: the state `start` returned, finished exactly once (here).
        unsafe { (self.finish)(self.state, &host, abi::FINISH_STOPPED) };
    }
}

/// The host table of one call; `ctx` points at `state` for the call's duration only.
fn host_table(state: &mut CallState, threads: u32) -> abi::VfHost {
    abi::VfHost {
        ctx: state as *mut CallState as *mut c_void,
        threads,
        alloc_output: host_alloc,
        set_error: host_set_error,
        open_output: host_open,
        emit_slice: host_emit,
    }
}

impl PluginNode {
    fn threads(&self) -> u32 {
        self.threads.min(u32::MAX as usize) as u32
    }

    fn library_name(&self) -> &str {
        std::path::Path::new(&self.library)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(&self.library)
    }

    /// Turns a call's status and the messages it left into the node's result.
    fn outcome(&self, status: i32, state: &mut CallState) -> Result<(), NodeError> {
        // A refused request explains a failure better than the plugin's own message.
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
        match state.refused.take() {
            Some(r) => Err(NodeError::msg(format!(
                "plugin {}: {r}",
                self.library_name()
            ))),
            None => Ok(()),
        }
    }

    /// The connected input ports, in declaration order.
    fn connected(&self, ctx: &NodeCtx) -> Vec<String> {
        self.decl
            .inputs
            .iter()
            .map(|p| p.name.clone())
            .filter(|p| ctx.has_input(p))
            .collect()
    }

    /// Checks a connected input's stream type against its declaration.
    fn check_input_type(&self, port: usize, h: &Header) -> Result<(), NodeError> {
        let p = &self.decl.inputs[port];
        match p.ty {
            PortType::Fixed(t) if h.stream_type != t => Err(NodeError::msg(format!(
                "input `{}` carries a {} stream, this node needs {t}",
                p.name, h.stream_type
            ))),
            _ => Ok(()),
        }
    }

    fn run_whole(
        &self,
        ctx: &mut NodeCtx,
        run: abi::VfRunFn,
        user_data: usize,
    ) -> Result<(), NodeError> {
        let connected = self.connected(ctx);
        let ports: Vec<&str> = connected.iter().map(String::as_str).collect();
        let vols = ctx.gather_many(&ports)?;
        let mut raw = Vec::new();
        let mut copies = Vec::new();
        let mut first: Option<&Volume> = None;
        for (port, p) in self.decl.inputs.iter().enumerate() {
            match connected.iter().position(|c| *c == p.name) {
                Some(n) => {
                    let v = &vols[n];
                    self.check_input_type(port, &v.header)?;
                    let (r, copy) = raw_volume(v);
                    raw.push(r);
                    copies.push(copy);
                    first.get_or_insert(v);
                }
                None => raw.push(abi::VfVolume::empty()),
            }
        }
        let mut state = CallState::new(&self.decl, Phase::Whole);
        let params: Vec<abi::VfParam> = self.params.iter().map(ParamSlot::raw).collect();
        let host = host_table(&mut state, self.threads());
        // SAFETY: the plugin's run function with the arguments the ABI describes; every
        // pointer stays valid until it returns.
        let status = unsafe {
            run(
                user_data as *const c_void,
                &host,
                params.as_ptr(),
                params.len() as u32,
                raw.as_ptr(),
                raw.len() as u32,
            )
        };
        drop(copies);
        self.outcome(status, &mut state)?;
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

    fn run_stream(
        &self,
        ctx: &mut NodeCtx,
        start: abi::VfStartFn,
        slice: abi::VfSliceFn,
        finish: abi::VfFinishFn,
        user_data: usize,
    ) -> Result<(), NodeError> {
        let connected = self.connected(ctx);
        let ports: Vec<&str> = connected.iter().map(String::as_str).collect();
        let mut zip = ctx.zip(&ports)?;
        // Position in the zip of each declared input (None: not connected).
        let mut in_zip = Vec::new();
        let mut geometry = Vec::new();
        for (port, p) in self.decl.inputs.iter().enumerate() {
            let n = connected.iter().position(|c| *c == p.name);
            match n {
                Some(n) => {
                    self.check_input_type(port, zip.header(n))?;
                    geometry.push(raw_geometry(zip.header(n)));
                }
                None => geometry.push(abi::VfVolume::empty()),
            }
            in_zip.push(n);
        }
        let first = (!connected.is_empty()).then(|| zip.header(0).clone());
        let in_slices = first.as_ref().map(|h| h.num_slices());
        ctx.set_total(in_slices.unwrap_or(0));

        let mut state = CallState::new(&self.decl, Phase::Start);
        let params: Vec<abi::VfParam> = self.params.iter().map(ParamSlot::raw).collect();
        let mut plugin_state: *mut c_void = std::ptr::null_mut();
        let host = host_table(&mut state, self.threads());
        // SAFETY: the plugin's start function with the arguments the ABI describes.
        let status = unsafe {
            start(
                user_data as *const c_void,
                &host,
                params.as_ptr(),
                params.len() as u32,
                geometry.as_ptr(),
                geometry.len() as u32,
                &mut plugin_state,
            )
        };
        self.outcome(status, &mut state)?;
        let mut open = StreamState {
            finish,
            state: plugin_state,
            threads: self.threads(),
            completed: false,
        };
        for (n, o) in state.opened.iter().enumerate() {
            let o = o.as_ref().ok_or_else(|| {
                NodeError::msg(format!(
                    "plugin {} did not open output `{}` in `start` (a streaming kind opens every output there)",
                    self.library_name(),
                    self.decl.outputs[n].name
                ))
            })?;
            ctx.send_header(
                &self.decl.outputs[n].name,
                header_from(&o.desc, first.as_deref()),
            )?;
        }

        // Slice metadata of the first input, for output slices of the same index.
        let mut metas: BTreeMap<usize, Meta> = BTreeMap::new();
        let mut delivered = Vec::new();
        state.phase = Phase::Emit;
        while let Some(aligned) = ctx.next_aligned(&mut zip)? {
            let k = aligned.index;
            if let Some(s) = aligned.slices.first().and_then(Option::as_ref) {
                if !s.meta.is_empty() {
                    metas.insert(k, s.meta.clone());
                }
            }
            let mut copies = Vec::new();
            let raw: Vec<abi::VfSlice> = in_zip
                .iter()
                .map(|n| match n.and_then(|n| aligned.slices[n].as_deref()) {
                    Some(s) => {
                        let (r, copy) = raw_slice(s);
                        copies.push(copy);
                        r
                    }
                    None => abi::VfSlice::absent(),
                })
                .collect();
            delivered.push(k);
            let host = host_table(&mut state, self.threads());
            // SAFETY: the state from `start`, and input slices valid until the call returns.
            let status =
                unsafe { slice(open.state, &host, k as u64, raw.as_ptr(), raw.len() as u32) };
            drop(copies);
            self.outcome(status, &mut state)?;
            self.send_emitted(ctx, &mut state, &mut metas, in_slices)?;
            ctx.tick();
        }
        open.completed = true;
        let host = host_table(&mut state, self.threads());
        // SAFETY: the state from `start`, finished exactly once (here).
        let status = unsafe { finish(open.state, &host, abi::FINISH_COMPLETED) };
        self.outcome(status, &mut state)?;
        self.send_emitted(ctx, &mut state, &mut metas, in_slices)?;

        for (n, o) in state.opened.iter().enumerate() {
            let o = o.as_ref().expect("checked after start");
            let nk = o.desc.shape[0] as usize;
            let name = &self.decl.outputs[n].name;
            let (want, rule): (Vec<usize>, &str) = if Some(nk) == in_slices {
                (delivered.clone(), "the slices the inputs delivered")
            } else {
                ((0..nk).collect(), "all of its slices")
            };
            if o.sent != want {
                let missing = want.iter().find(|k| !o.sent.contains(k));
                return Err(NodeError::msg(format!(
                    "plugin {} sent {} of output `{name}`'s slices, it must send {rule} ({}){}",
                    self.library_name(),
                    o.sent.len(),
                    want.len(),
                    missing
                        .map(|k| format!("; slice {k} is missing"))
                        .unwrap_or_default()
                )));
            }
            ctx.end(name)?;
        }
        Ok(())
    }

    /// Sends the slices the last call emitted, with the first input's slice metadata.
    fn send_emitted(
        &self,
        ctx: &mut NodeCtx,
        state: &mut CallState,
        metas: &mut BTreeMap<usize, Meta>,
        in_slices: Option<usize>,
    ) -> Result<(), NodeError> {
        for (port, k, buf) in std::mem::take(&mut state.emitted) {
            let o = state.opened[port]
                .as_ref()
                .expect("emitted to an open output");
            let [_, c, nj, ni] = o.desc.shape.map(|v| v as usize);
            let bad = |e: ndarray::ShapeError| {
                NodeError::msg(format!("output slice does not fit its shape: {e}"))
            };
            let data = match (stream_of(o.desc.stream_type), buf) {
                (Some(StreamType::Label), OutBuf::U8(v)) => {
                    SliceData::Label(Array2::from_shape_vec((nj, ni), v).map_err(bad)?)
                }
                (Some(StreamType::Image), OutBuf::F32(v)) => {
                    SliceData::Image(Array2::from_shape_vec((nj, ni), v).map_err(bad)?)
                }
                (Some(StreamType::Prob), OutBuf::F32(v)) => {
                    SliceData::Prob(Array3::from_shape_vec((c, nj, ni), v).map_err(bad)?)
                }
                _ => unreachable!("dtype checked when the output was opened"),
            };
            let mut slice = Slice::new(k, data);
            if Some(o.desc.shape[0] as usize) == in_slices {
                if let Some(m) = metas.get(&k) {
                    slice.meta = m.clone();
                }
            }
            ctx.send_slice(&self.decl.outputs[port].name, slice)?;
        }
        // Metadata of slices every output has passed is no longer needed.
        let passed = state
            .opened
            .iter()
            .flatten()
            .map(|o| o.sent.last().map_or(0, |l| l + 1))
            .min()
            .unwrap_or(0);
        metas.retain(|&k, _| k >= passed);
        Ok(())
    }
}

impl Node for PluginNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        match self.body {
            KindBody::Volume { run, user_data } => self.run_whole(ctx, run, user_data),
            KindBody::Stream {
                start,
                slice,
                finish,
                user_data,
            } => self.run_stream(ctx, start, slice, finish, user_data),
        }
    }
}

/// Key of the built-in nodes' preprocessing record in the stream metadata
/// (`voxflow_nodes::meta::PREPROCESS`; tests/plugins.rs checks that they agree).
pub const PREPROCESS_META: &str = "preprocess";

/// The header of an output: its geometry, with the metadata of the first input (less the
/// preprocessing record: what the plugin did to the intensities is unknown here).
fn header_from(d: &abi::VfVolume, first: Option<&Header>) -> Header {
    let ty = stream_of(d.stream_type).expect("checked when the output was requested");
    let [nk, c, nj, ni] = d.shape.map(|v| v as usize);
    let mut header = Header::new(ty, [nk, nj, ni], d.spacing);
    header.channels = c;
    for (n, a) in d.affine.iter().enumerate() {
        header.affine[n / 4][n % 4] = *a;
    }
    if let Some(f) = first {
        header.meta = f.meta.clone();
        header.meta.remove(PREPROCESS_META);
    }
    header
}

/// Wraps an output buffer as a volume; metadata travels on from the first input.
fn volume_from(
    d: &abi::VfVolume,
    buf: OutBuf,
    first: Option<&Volume>,
) -> Result<Volume, NodeError> {
    let header = header_from(d, first.map(|v| &v.header));
    let [nk, c, nj, ni] = d.shape.map(|v| v as usize);
    let bad = |e: ndarray::ShapeError| {
        NodeError::msg(format!("output buffer does not fit its shape: {e}"))
    };
    let data = match (header.stream_type, buf) {
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
    if let Some(f) = first.filter(|f| f.header.shape[0] == nk) {
        vol.slice_meta = f.slice_meta.clone();
    }
    Ok(vol)
}
