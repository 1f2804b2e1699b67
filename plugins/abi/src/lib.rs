//! The voxflow node plugin ABI (version 2): `#[repr(C)]` mirrors of `voxflow_plugin.h`, plus
//! safe helpers for plugins written in Rust (`export_plugin!`, [`StreamKind`] for kinds that
//! stream slices, [`Call`] for kinds that take whole volumes). [`v1`] mirrors the version-1
//! table, which the host still loads.
//!
//! Nothing Rust-specific crosses the library boundary: plain structs, pointers and `extern "C"`
//! functions. Ownership rules are written in `voxflow_plugin.h` and `docs/PLUGINS.md`.

use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Bumped on every change of a layout or meaning below; the host accepts only its own.
pub const ABI_VERSION: u32 = 2;
/// The symbol every plugin exports.
pub const ENTRY_SYMBOL: &str = "voxflow_plugin_entry";

pub const STREAM_IMAGE: u32 = 0;
pub const STREAM_LABEL: u32 = 1;
pub const STREAM_PROB: u32 = 2;

pub const DTYPE_F32: u32 = 0;
pub const DTYPE_U8: u32 = 1;

pub const STATUS_OK: i32 = 0;
pub const STATUS_ERROR: i32 = 1;
pub const STATUS_PANIC: i32 = 2;

/// `completed` of [`VfFinishFn`]: the run stopped early; free the state, emit nothing.
pub const FINISH_STOPPED: i32 = 0;
/// `completed` of [`VfFinishFn`]: every slice was delivered; emit what is held back, then free.
pub const FINISH_COMPLETED: i32 = 1;

pub const PARAM_UNSET: u32 = 0;
pub const PARAM_BOOL: u32 = 1;
pub const PARAM_INT: u32 = 2;
pub const PARAM_FLOAT: u32 = 3;
pub const PARAM_STRING: u32 = 4;
pub const PARAM_LIST: u32 = 5;

/// A whole volume as a plain buffer (`vf_volume`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VfVolume {
    pub stream_type: u32,
    pub dtype: u32,
    /// `[nk, channels, nj, ni]`.
    pub shape: [u64; 4],
    /// `[dk, dj, di]` in mm.
    pub spacing: [f64; 3],
    /// Row-major 4x4, voxel `(i, j, k, 1)` to world mm.
    pub affine: [f64; 16],
    pub data: *mut c_void,
    pub len: u64,
}

impl VfVolume {
    /// An absent volume (unconnected optional input).
    pub fn empty() -> Self {
        VfVolume {
            stream_type: 0,
            dtype: 0,
            shape: [0; 4],
            spacing: [0.0; 3],
            affine: [0.0; 16],
            data: std::ptr::null_mut(),
            len: 0,
        }
    }
}

/// Slice k of one input in a streaming call (`vf_slice`); `data` is NULL when absent.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VfSlice {
    pub data: *const c_void,
    pub len: u64,
    pub dtype: u32,
}

impl VfSlice {
    /// No slice: an unconnected input, or a slice the input does not have.
    pub fn absent() -> Self {
        VfSlice {
            data: std::ptr::null(),
            len: 0,
            dtype: 0,
        }
    }
}

/// One param value (`vf_param`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VfParam {
    pub name: *const c_char,
    pub kind: u32,
    pub int_value: i64,
    pub float_value: f64,
    pub text: *const c_char,
}

/// Host services during one call (`vf_host`).
#[repr(C)]
pub struct VfHost {
    pub ctx: *mut c_void,
    pub threads: u32,
    pub alloc_output:
        unsafe extern "C" fn(ctx: *mut c_void, port: u32, desc: *const VfVolume) -> *mut c_void,
    pub set_error: unsafe extern "C" fn(ctx: *mut c_void, message: *const c_char),
    pub open_output:
        unsafe extern "C" fn(ctx: *mut c_void, port: u32, desc: *const VfVolume) -> i32,
    pub emit_slice: unsafe extern "C" fn(
        ctx: *mut c_void,
        port: u32,
        k: u64,
        data: *const c_void,
        len: u64,
    ) -> i32,
}

/// `vf_run_fn`.
pub type VfRunFn = unsafe extern "C" fn(
    user_data: *const c_void,
    host: *const VfHost,
    params: *const VfParam,
    n_params: u32,
    inputs: *const VfVolume,
    n_inputs: u32,
) -> i32;

/// `vf_start_fn`.
pub type VfStartFn = unsafe extern "C" fn(
    user_data: *const c_void,
    host: *const VfHost,
    params: *const VfParam,
    n_params: u32,
    inputs: *const VfVolume,
    n_inputs: u32,
    state: *mut *mut c_void,
) -> i32;

/// `vf_slice_fn`.
pub type VfSliceFn = unsafe extern "C" fn(
    state: *mut c_void,
    host: *const VfHost,
    k: u64,
    inputs: *const VfSlice,
    n_inputs: u32,
) -> i32;

/// `vf_finish_fn`.
pub type VfFinishFn =
    unsafe extern "C" fn(state: *mut c_void, host: *const VfHost, completed: i32) -> i32;

/// One node kind (`vf_kind`): `run`, or all of `start`, `slice` and `finish` (NULL = `None`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct VfKind {
    pub decl_json: *const c_char,
    pub run: Option<VfRunFn>,
    pub user_data: *const c_void,
    pub start: Option<VfStartFn>,
    pub slice: Option<VfSliceFn>,
    pub finish: Option<VfFinishFn>,
}

/// What the entry symbol returns (`vf_plugin`).
#[repr(C)]
pub struct VfPlugin {
    pub abi_version: u32,
    pub n_kinds: u32,
    pub kinds: *const VfKind,
    pub name: *const c_char,
}

/// The signature of `voxflow_plugin_entry`.
pub type VfEntryFn = unsafe extern "C" fn() -> *const VfPlugin;

/// Version 1 of the table, still loaded by the host: the same `VfPlugin`, whose `kinds` point
/// to these shorter entries (whole-volume `run` only).
pub mod v1 {
    use super::VfRunFn;
    use std::ffi::{c_char, c_void};

    pub const ABI_VERSION: u32 = 1;

    /// A version-1 `vf_kind`.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct VfKind {
        pub decl_json: *const c_char,
        pub run: Option<VfRunFn>,
        pub user_data: *const c_void,
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers for plugins written in Rust.

/// A node kind written in Rust: its declaration (JSON, see docs/PLUGINS.md) and its body.
pub struct KindSpec {
    pub decl: &'static str,
    pub body: Body,
}

/// How a kind runs.
pub enum Body {
    /// On whole volumes.
    Volume(fn(&mut Call) -> Result<(), String>),
    /// Slice by slice: the monomorphic entry points of a [`StreamKind`].
    Stream {
        start: VfStartFn,
        slice: VfSliceFn,
        finish: VfFinishFn,
    },
}

impl KindSpec {
    /// A kind that takes whole volumes.
    pub const fn volume(decl: &'static str, run: fn(&mut Call) -> Result<(), String>) -> Self {
        KindSpec {
            decl,
            body: Body::Volume(run),
        }
    }

    /// A kind that streams slices through `T`.
    pub const fn stream<T: StreamKind>(decl: &'static str) -> Self {
        KindSpec {
            decl,
            body: Body::Stream {
                start: stream_start::<T>,
                slice: stream_slice::<T>,
                finish: stream_finish::<T>,
            },
        }
    }
}

/// The table a Rust plugin's entry symbol returns; built once by `export_plugin!`.
pub struct Table {
    _strings: Vec<CString>,
    _kinds: Vec<VfKind>,
    plugin: VfPlugin,
}

// The raw pointers point into the table's own heap buffers, which are never changed.
unsafe impl Send for Table {}
unsafe impl Sync for Table {}

impl Table {
    pub fn new(name: &str, specs: &'static [KindSpec]) -> Table {
        let cstr = |s: &str| CString::new(s.replace('\0', "")).unwrap_or_default();
        let mut strings = vec![cstr(name)];
        let mut kinds = Vec::with_capacity(specs.len());
        for spec in specs {
            let decl = cstr(spec.decl);
            let mut kind = VfKind {
                decl_json: decl.as_ptr(),
                run: None,
                user_data: spec as *const KindSpec as *const c_void,
                start: None,
                slice: None,
                finish: None,
            };
            match spec.body {
                Body::Volume(_) => kind.run = Some(trampoline),
                Body::Stream {
                    start,
                    slice,
                    finish,
                } => {
                    kind.start = Some(start);
                    kind.slice = Some(slice);
                    kind.finish = Some(finish);
                }
            }
            kinds.push(kind);
            strings.push(decl);
        }
        let plugin = VfPlugin {
            abi_version: ABI_VERSION,
            n_kinds: kinds.len() as u32,
            kinds: kinds.as_ptr(),
            name: strings[0].as_ptr(),
        };
        Table {
            _strings: strings,
            _kinds: kinds,
            plugin,
        }
    }

    pub fn plugin(&self) -> *const VfPlugin {
        &self.plugin
    }
}

/// Exports `voxflow_plugin_entry` for Rust node kinds:
///
/// ```ignore
/// voxflow_plugin_abi::export_plugin!("my_plugin", [
///     stream(SLICEWISE_DECL, MyStreamingNode), // MyStreamingNode: StreamKind
///     (WHOLE_DECL, my_run),                    // fn my_run(&mut Call) -> Result<(), String>
/// ]);
/// ```
///
/// Panics inside the kinds are caught at the boundary and reported to the host as errors.
#[macro_export]
macro_rules! export_plugin {
    ($name:expr, [$($kinds:tt)*]) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn voxflow_plugin_entry() -> *const $crate::VfPlugin {
            static SPECS: &[$crate::KindSpec] = &$crate::__kind_specs!([] $($kinds)*);
            static TABLE: ::std::sync::OnceLock<$crate::Table> = ::std::sync::OnceLock::new();
            TABLE.get_or_init(|| $crate::Table::new($name, SPECS)).plugin()
        }
    };
}

/// The `KindSpec` list of `export_plugin!`, one entry at a time.
#[doc(hidden)]
#[macro_export]
macro_rules! __kind_specs {
    ([$($done:expr,)*]) => { [$($done),*] };
    ([$($done:expr,)*] ($decl:expr, $run:expr) $(, $($rest:tt)*)?) => {
        $crate::__kind_specs!([$($done,)* $crate::KindSpec::volume($decl, $run),] $($($rest)*)?)
    };
    ([$($done:expr,)*] stream($decl:expr, $ty:ty) $(, $($rest:tt)*)?) => {
        $crate::__kind_specs!([$($done,)* $crate::KindSpec::stream::<$ty>($decl),] $($($rest)*)?)
    };
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".into()
    }
}

/// Runs `body`, turning an error or a panic into a status with the message given to the host.
///
/// # Safety
/// `host` is the host table of the running call.
unsafe fn guarded(host: *const VfHost, body: impl FnOnce() -> Result<(), String>) -> i32 {
    let (status, msg) = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return STATUS_OK,
        Ok(Err(m)) => (STATUS_ERROR, m),
        Err(p) => (STATUS_PANIC, format!("panicked: {}", panic_text(&*p))),
    };
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    ((*host).set_error)((*host).ctx, c.as_ptr());
    status
}

/// `ptr[..n]`, or an empty slice for NULL.
///
/// # Safety
/// A non-NULL `ptr` points to `n` valid elements for the returned lifetime.
unsafe fn lent<'a, T>(ptr: *const T, n: u32) -> &'a [T] {
    if n == 0 || ptr.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, n as usize)
    }
}

/// The `run` of every whole-volume Rust kind: calls the `KindSpec` behind `user_data`.
///
/// # Safety
/// Called by the host with the pointers described in `voxflow_plugin.h`.
pub unsafe extern "C" fn trampoline(
    user_data: *const c_void,
    host: *const VfHost,
    params: *const VfParam,
    n_params: u32,
    inputs: *const VfVolume,
    n_inputs: u32,
) -> i32 {
    guarded(host, || {
        // SAFETY: the host passes valid arrays of the given lengths for the call's duration,
        // and `user_data` is the `KindSpec` the table was built from.
        let spec = &*(user_data as *const KindSpec);
        let Body::Volume(run) = spec.body else {
            return Err("a streaming kind was called as a whole-volume kind".into());
        };
        let mut call = Call {
            host: &*host,
            params: Params(lent(params, n_params)),
            inputs: lent(inputs, n_inputs),
        };
        run(&mut call)
    })
}

/// A node kind that streams: the host calls [`StreamKind::start`] once with the inputs'
/// geometry, [`StreamKind::slice`] for slice k of every input in increasing k, then
/// [`StreamKind::finish`]; outputs go out slice by slice through [`Emit`]. Dropping the value
/// frees it (also when the run stops early).
pub trait StreamKind: Sized + 'static {
    /// Reads the params and the inputs' geometry and opens every output.
    fn start(start: &mut Start) -> Result<Self, String>;
    /// Slice `slices.index()` of every input; may emit output slices.
    fn slice(&mut self, slices: &Slices, emit: &mut Emit) -> Result<(), String>;
    /// After the last slice: emits what is still held back.
    fn finish(&mut self, _emit: &mut Emit) -> Result<(), String> {
        Ok(())
    }
}

unsafe extern "C" fn stream_start<T: StreamKind>(
    _user_data: *const c_void,
    host: *const VfHost,
    params: *const VfParam,
    n_params: u32,
    inputs: *const VfVolume,
    n_inputs: u32,
    state: *mut *mut c_void,
) -> i32 {
    guarded(host, || {
        // SAFETY: as in `trampoline`; `state` is a valid place for the state pointer.
        let mut start = Start {
            host: &*host,
            params: Params(lent(params, n_params)),
            inputs: lent(inputs, n_inputs),
        };
        let node = T::start(&mut start)?;
        *state = Box::into_raw(Box::new(node)) as *mut c_void;
        Ok(())
    })
}

unsafe extern "C" fn stream_slice<T: StreamKind>(
    state: *mut c_void,
    host: *const VfHost,
    k: u64,
    inputs: *const VfSlice,
    n_inputs: u32,
) -> i32 {
    guarded(host, || {
        // SAFETY: `state` is the box `stream_start` made, used from one thread at a time.
        let node = &mut *(state as *mut T);
        let slices = Slices {
            index: k as usize,
            inputs: lent(inputs, n_inputs),
        };
        node.slice(&slices, &mut Emit { host: &*host })
    })
}

unsafe extern "C" fn stream_finish<T: StreamKind>(
    state: *mut c_void,
    host: *const VfHost,
    completed: i32,
) -> i32 {
    // SAFETY: `state` is the box `stream_start` made; the host calls finish once for it.
    let mut node = Box::from_raw(state as *mut T);
    let status = if completed == FINISH_COMPLETED {
        guarded(host, || node.finish(&mut Emit { host: &*host }))
    } else {
        STATUS_OK
    };
    // A panicking Drop must not unwind into the host.
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(node)));
    if status == STATUS_OK && dropped.is_err() {
        return guarded(host, || Err("panicked while freeing the node state".into()));
    }
    status
}

/// The stream type of a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Image,
    Label,
    Prob,
}

impl Stream {
    pub fn code(self) -> u32 {
        match self {
            Stream::Image => STREAM_IMAGE,
            Stream::Label => STREAM_LABEL,
            Stream::Prob => STREAM_PROB,
        }
    }
    fn from_code(c: u32) -> Option<Self> {
        match c {
            STREAM_IMAGE => Some(Stream::Image),
            STREAM_LABEL => Some(Stream::Label),
            STREAM_PROB => Some(Stream::Prob),
            _ => None,
        }
    }
    /// `DTYPE_U8` for labels, `DTYPE_F32` otherwise.
    pub fn dtype(self) -> u32 {
        if self == Stream::Label {
            DTYPE_U8
        } else {
            DTYPE_F32
        }
    }
}

/// Shape and placement of a volume.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geometry {
    pub stream: Stream,
    /// `[nk, channels, nj, ni]`.
    pub shape: [usize; 4],
    pub spacing: [f64; 3],
    pub affine: [f64; 16],
}

impl Geometry {
    fn of(raw: &VfVolume) -> Self {
        Geometry {
            stream: Stream::from_code(raw.stream_type).unwrap_or(Stream::Image),
            shape: raw.shape.map(|v| v as usize),
            spacing: raw.spacing,
            affine: raw.affine,
        }
    }
    /// True when both lie on one voxel grid: the same slices, rows and columns (channels may
    /// differ) and affines that agree within 1e-4 mm, the rule voxflow's own nodes use
    /// (`Header::same_geometry`).
    pub fn same_grid(&self, other: &Geometry) -> bool {
        self.shape[0] == other.shape[0]
            && self.shape[2..] == other.shape[2..]
            && self
                .affine
                .iter()
                .zip(&other.affine)
                .all(|(a, b)| (a - b).abs() <= 1e-4 * (1.0 + a.abs()))
    }
    /// The same geometry with another stream type and channel count.
    pub fn with_stream(mut self, stream: Stream, channels: usize) -> Self {
        self.stream = stream;
        self.shape[1] = channels;
        self
    }
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Elements of one slice: channels x nj x ni.
    pub fn slice_len(&self) -> usize {
        self.shape[1..].iter().product()
    }
    fn raw(&self) -> VfVolume {
        let mut desc = VfVolume::empty();
        desc.stream_type = self.stream.code();
        desc.dtype = self.stream.dtype();
        desc.shape = self.shape.map(|v| v as u64);
        desc.spacing = self.spacing;
        desc.affine = self.affine;
        desc.len = self.len() as u64;
        desc
    }
}

/// A borrowed input volume.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    raw: &'a VfVolume,
}

impl<'a> Input<'a> {
    pub fn geometry(&self) -> Geometry {
        Geometry::of(self.raw)
    }
    /// Label voxels, `None` for other stream types.
    pub fn labels(&self) -> Option<&'a [u8]> {
        (self.raw.dtype == DTYPE_U8)
            // SAFETY: the host lends `len` elements of this dtype for the call.
            .then(|| unsafe {
                std::slice::from_raw_parts(self.raw.data as *const u8, self.raw.len as usize)
            })
    }
    /// Image or prob voxels, `None` for labels.
    pub fn floats(&self) -> Option<&'a [f32]> {
        (self.raw.dtype == DTYPE_F32)
            // SAFETY: as above.
            .then(|| unsafe {
                std::slice::from_raw_parts(self.raw.data as *const f32, self.raw.len as usize)
            })
    }
}

/// A param value as the plugin sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue<'a> {
    Unset,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    /// A list, as JSON text.
    List(&'a str),
}

/// The params of a call, checked by the host against the declaration (defaults filled in).
#[derive(Clone, Copy)]
pub struct Params<'a>(&'a [VfParam]);

impl<'a> Params<'a> {
    /// A param by name.
    pub fn param(&self, name: &str) -> ParamValue<'a> {
        let text = |p: *const c_char| {
            // SAFETY: the host passes NUL-terminated UTF-8 strings valid for the call.
            if p.is_null() {
                ""
            } else {
                unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("")
            }
        };
        for p in self.0 {
            if text(p.name) == name {
                return match p.kind {
                    PARAM_BOOL => ParamValue::Bool(p.int_value != 0),
                    PARAM_INT => ParamValue::Int(p.int_value),
                    PARAM_FLOAT => ParamValue::Float(p.float_value),
                    PARAM_STRING => ParamValue::Str(text(p.text)),
                    PARAM_LIST => ParamValue::List(text(p.text)),
                    _ => ParamValue::Unset,
                };
            }
        }
        ParamValue::Unset
    }

    /// An int param, `None` when unset.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.param(name) {
            ParamValue::Int(v) => Some(v),
            _ => None,
        }
    }
    /// A float (or int) param, `None` when unset.
    pub fn float(&self, name: &str) -> Option<f64> {
        match self.param(name) {
            ParamValue::Float(v) => Some(v),
            ParamValue::Int(v) => Some(v as f64),
            _ => None,
        }
    }
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.param(name) {
            ParamValue::Bool(v) => Some(v),
            _ => None,
        }
    }
    pub fn str(&self, name: &str) -> Option<&'a str> {
        match self.param(name) {
            ParamValue::Str(v) => Some(v),
            _ => None,
        }
    }
}

/// The start of a streaming node: params, input geometry, and the outputs to open.
pub struct Start<'a> {
    host: &'a VfHost,
    pub params: Params<'a>,
    inputs: &'a [VfVolume],
}

impl Start<'_> {
    /// The geometry of input `port` (declaration order); `None` when it is not connected.
    pub fn input(&self, port: usize) -> Option<Geometry> {
        self.inputs
            .get(port)
            .filter(|v| v.shape[0] != 0)
            .map(Geometry::of)
    }

    /// Threads the node may use.
    pub fn threads(&self) -> usize {
        self.host.threads.max(1) as usize
    }

    /// Opens output `port` with the geometry of its whole volume.
    pub fn open_output(&mut self, port: usize, g: &Geometry) -> Result<(), String> {
        let desc = g.raw();
        // SAFETY: host callback as documented.
        let status = unsafe { (self.host.open_output)(self.host.ctx, port as u32, &desc) };
        if status == STATUS_OK {
            Ok(())
        } else {
            Err(format!("the host refused to open output {port}"))
        }
    }
}

/// Slice k of every input of a streaming node.
pub struct Slices<'a> {
    index: usize,
    inputs: &'a [VfSlice],
}

impl<'a> Slices<'a> {
    /// The slice index k.
    pub fn index(&self) -> usize {
        self.index
    }
    fn raw(&self, port: usize) -> Option<&'a VfSlice> {
        self.inputs.get(port).filter(|s| !s.data.is_null())
    }
    /// Label voxels of input `port`; `None` when it has no slice k or is not a label.
    pub fn labels(&self, port: usize) -> Option<&'a [u8]> {
        self.raw(port)
            .filter(|s| s.dtype == DTYPE_U8)
            // SAFETY: the host lends `len` elements of this dtype for the call.
            .map(|s| unsafe { std::slice::from_raw_parts(s.data as *const u8, s.len as usize) })
    }
    /// Image or prob voxels of input `port`; `None` when it has no slice k or is a label.
    pub fn floats(&self, port: usize) -> Option<&'a [f32]> {
        self.raw(port)
            .filter(|s| s.dtype == DTYPE_F32)
            // SAFETY: as above.
            .map(|s| unsafe { std::slice::from_raw_parts(s.data as *const f32, s.len as usize) })
    }
}

/// Sends output slices (the host copies them).
pub struct Emit<'a> {
    host: &'a VfHost,
}

impl Emit<'_> {
    fn send(
        &mut self,
        port: usize,
        k: usize,
        data: *const c_void,
        len: usize,
    ) -> Result<(), String> {
        // SAFETY: host callback as documented; `data` holds `len` elements of the output's dtype.
        let status = unsafe {
            (self.host.emit_slice)(self.host.ctx, port as u32, k as u64, data, len as u64)
        };
        if status == STATUS_OK {
            Ok(())
        } else {
            Err(format!("the host refused slice {k} of output {port}"))
        }
    }
    /// Sends slice `k` of label output `port`.
    pub fn labels(&mut self, port: usize, k: usize, voxels: &[u8]) -> Result<(), String> {
        self.send(port, k, voxels.as_ptr() as *const c_void, voxels.len())
    }
    /// Sends slice `k` of image or prob output `port`.
    pub fn floats(&mut self, port: usize, k: usize, voxels: &[f32]) -> Result<(), String> {
        self.send(port, k, voxels.as_ptr() as *const c_void, voxels.len())
    }
}

/// One call of a whole-volume node: inputs, params, and the host's output allocator.
pub struct Call<'a> {
    host: &'a VfHost,
    pub params: Params<'a>,
    inputs: &'a [VfVolume],
}

impl<'a> Call<'a> {
    /// Input `port` (declaration order); `None` when it is not connected.
    pub fn input(&self, port: usize) -> Option<Input<'a>> {
        self.inputs
            .get(port)
            .filter(|v| !v.data.is_null())
            .map(|raw| Input { raw })
    }

    /// Threads the node may use.
    pub fn threads(&self) -> usize {
        self.host.threads.max(1) as usize
    }

    fn alloc(&mut self, port: usize, g: &Geometry) -> Result<*mut c_void, String> {
        let desc = g.raw();
        // SAFETY: host callbacks as documented; the buffer lives until the call returns.
        let p = unsafe { (self.host.alloc_output)(self.host.ctx, port as u32, &desc) };
        if p.is_null() {
            Err(format!("the host refused output {port}"))
        } else {
            Ok(p)
        }
    }

    /// Allocates a label output (zero-filled) and returns its voxels.
    pub fn output_labels(&mut self, port: usize, g: &Geometry) -> Result<&'a mut [u8], String> {
        if g.stream != Stream::Label {
            return Err(format!(
                "output {port}: output_labels needs a label geometry"
            ));
        }
        let p = self.alloc(port, g)?;
        // SAFETY: the host allocated `len` zeroed u8 elements, unaliased, valid for the call.
        Ok(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, g.len()) })
    }

    /// Allocates an image or prob output (zero-filled) and returns its voxels.
    pub fn output_floats(&mut self, port: usize, g: &Geometry) -> Result<&'a mut [f32], String> {
        if g.stream == Stream::Label {
            return Err(format!(
                "output {port}: output_floats needs an image or prob geometry"
            ));
        }
        let p = self.alloc(port, g)?;
        // SAFETY: as above, f32 elements.
        Ok(unsafe { std::slice::from_raw_parts_mut(p as *mut f32, g.len()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_header() {
        // Sizes the C header implies on 64-bit targets.
        assert_eq!(
            std::mem::size_of::<VfVolume>(),
            4 + 4 + 32 + 24 + 128 + 8 + 8
        );
        assert_eq!(std::mem::size_of::<VfSlice>(), 8 + 8 + 4 + 4);
        assert_eq!(std::mem::size_of::<VfParam>(), 8 + 8 + 8 + 8 + 8);
        assert_eq!(std::mem::size_of::<VfKind>(), 6 * 8);
        assert_eq!(std::mem::size_of::<v1::VfKind>(), 3 * 8);
        assert_eq!(std::mem::size_of::<VfPlugin>(), 4 + 4 + 8 + 8);
        assert_eq!(std::mem::size_of::<VfHost>(), 6 * 8);
    }
}
