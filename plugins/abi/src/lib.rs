//! The voxflow node plugin ABI (version 1): `#[repr(C)]` mirrors of `voxflow_plugin.h`, plus
//! safe helpers for plugins written in Rust (`export_plugin!`, [`Call`]).
//!
//! Nothing Rust-specific crosses the library boundary: plain structs, pointers and `extern "C"`
//! functions. Ownership rules are written in `voxflow_plugin.h` and `docs/PLUGINS.md`.

use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Bumped on every change of a layout or meaning below; the host accepts only its own.
pub const ABI_VERSION: u32 = 1;
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

/// One node kind (`vf_kind`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct VfKind {
    pub decl_json: *const c_char,
    pub run: VfRunFn,
    pub user_data: *const c_void,
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

// ---------------------------------------------------------------------------------------------
// Helpers for plugins written in Rust.

/// A node kind written in Rust: its declaration (JSON, see docs/PLUGINS.md) and its body.
pub struct KindSpec {
    pub decl: &'static str,
    pub run: fn(&mut Call) -> Result<(), String>,
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
            kinds.push(VfKind {
                decl_json: decl.as_ptr(),
                run: trampoline,
                user_data: spec as *const KindSpec as *const c_void,
            });
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
/// voxflow_plugin_abi::export_plugin!("my_plugin", [(MY_DECL_JSON, my_run)]);
/// // fn my_run(call: &mut voxflow_plugin_abi::Call) -> Result<(), String>
/// ```
///
/// Panics inside `my_run` are caught at the boundary and reported to the host as errors.
#[macro_export]
macro_rules! export_plugin {
    ($name:expr, [$(($decl:expr, $run:expr)),* $(,)?]) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn voxflow_plugin_entry() -> *const $crate::VfPlugin {
            static SPECS: &[$crate::KindSpec] = &[$($crate::KindSpec { decl: $decl, run: $run }),*];
            static TABLE: ::std::sync::OnceLock<$crate::Table> = ::std::sync::OnceLock::new();
            TABLE.get_or_init(|| $crate::Table::new($name, SPECS)).plugin()
        }
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

/// The `run` of every Rust kind: calls the `KindSpec` behind `user_data`, catching panics.
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
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the host passes valid arrays of the given lengths for the call's duration.
        let spec = &*(user_data as *const KindSpec);
        let slice = |p: *const VfParam, n: u32| {
            if n == 0 || p.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(p, n as usize)
            }
        };
        let inputs = if n_inputs == 0 || inputs.is_null() {
            &[][..]
        } else {
            std::slice::from_raw_parts(inputs, n_inputs as usize)
        };
        let mut call = Call {
            host: &*host,
            params: slice(params, n_params),
            inputs,
        };
        (spec.run)(&mut call)
    }));
    let (status, msg) = match result {
        Ok(Ok(())) => return STATUS_OK,
        Ok(Err(m)) => (STATUS_ERROR, m),
        Err(p) => (STATUS_PANIC, format!("panicked: {}", panic_text(&*p))),
    };
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    ((*host).set_error)((*host).ctx, c.as_ptr());
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
}

/// A borrowed input volume.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    raw: &'a VfVolume,
}

impl<'a> Input<'a> {
    pub fn geometry(&self) -> Geometry {
        Geometry {
            stream: Stream::from_code(self.raw.stream_type).unwrap_or(Stream::Image),
            shape: self.raw.shape.map(|v| v as usize),
            spacing: self.raw.spacing,
            affine: self.raw.affine,
        }
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

/// One call of a node: inputs, params, and the host's output allocator.
pub struct Call<'a> {
    host: &'a VfHost,
    params: &'a [VfParam],
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
        for p in self.params {
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

    fn alloc(&mut self, port: usize, g: &Geometry) -> Result<*mut c_void, String> {
        let mut desc = VfVolume::empty();
        desc.stream_type = g.stream.code();
        desc.dtype = g.stream.dtype();
        desc.shape = g.shape.map(|v| v as u64);
        desc.spacing = g.spacing;
        desc.affine = g.affine;
        desc.len = g.len() as u64;
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
        assert_eq!(std::mem::size_of::<VfParam>(), 8 + 8 + 8 + 8 + 8);
        assert_eq!(std::mem::size_of::<VfKind>(), 24);
        assert_eq!(std::mem::size_of::<VfPlugin>(), 4 + 4 + 8 + 8);
        assert_eq!(std::mem::size_of::<VfHost>(), 8 + 8 + 8 + 8);
    }
}
