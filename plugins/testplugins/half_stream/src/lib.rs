//! Test plugin: a version-2 kind with `start` but neither `slice` nor `finish`.

use std::ffi::{c_void, CStr};
use voxflow_plugin_abi::{VfHost, VfKind, VfParam, VfPlugin, VfVolume, ABI_VERSION, STATUS_ERROR};

const DECL: &CStr = c"{\"kind\": \"half_stream\", \"about\": \"starts a stream it cannot carry\",
  \"inputs\": [{\"name\": \"in\", \"type\": \"label\"}], \"outputs\": [{\"name\": \"out\", \"type\": \"label\"}]}";

unsafe extern "C" fn start(
    _user_data: *const c_void,
    _host: *const VfHost,
    _params: *const VfParam,
    _n_params: u32,
    _inputs: *const VfVolume,
    _n_inputs: u32,
    _state: *mut *mut c_void,
) -> i32 {
    STATUS_ERROR
}

struct Table(VfPlugin);
// The table only points to statics.
unsafe impl Sync for Table {}

struct Kinds([VfKind; 1]);
unsafe impl Sync for Kinds {}

static KINDS: Kinds = Kinds([VfKind {
    decl_json: DECL.as_ptr(),
    run: None,
    user_data: std::ptr::null(),
    start: Some(start),
    slice: None,
    finish: None,
}]);

static TABLE: Table = Table(VfPlugin {
    abi_version: ABI_VERSION,
    n_kinds: 1,
    kinds: &KINDS.0 as *const [VfKind; 1] as *const VfKind,
    name: c"half_stream".as_ptr(),
});

#[no_mangle]
pub extern "C" fn voxflow_plugin_entry() -> *const VfPlugin {
    &TABLE.0
}
