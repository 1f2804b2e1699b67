//! Test plugin: the version-1 table, written out by hand as a plugin built before version 2
//! would have it (three-field kinds, whole volumes). `legacy_invert`: 1 where the label is 0.

use std::ffi::{c_void, CStr};
use voxflow_plugin_abi::{v1, VfHost, VfParam, VfPlugin, VfVolume, STATUS_ERROR, STATUS_OK};

const DECL: &CStr = c"{\"kind\": \"legacy_invert\", \"about\": \"1 where the label is 0 (ABI version 1)\",
  \"inputs\": [{\"name\": \"in\", \"type\": \"label\"}], \"outputs\": [{\"name\": \"out\", \"type\": \"label\"}]}";

unsafe extern "C" fn run(
    _user_data: *const c_void,
    host: *const VfHost,
    _params: *const VfParam,
    _n_params: u32,
    inputs: *const VfVolume,
    n_inputs: u32,
) -> i32 {
    let host = &*host;
    if n_inputs != 1 {
        return STATUS_ERROR;
    }
    let input = &*inputs;
    let out = (host.alloc_output)(host.ctx, 0, input) as *mut u8;
    if out.is_null() {
        return STATUS_ERROR;
    }
    let src = std::slice::from_raw_parts(input.data as *const u8, input.len as usize);
    let dst = std::slice::from_raw_parts_mut(out, input.len as usize);
    for (o, &s) in dst.iter_mut().zip(src) {
        *o = u8::from(s == 0);
    }
    STATUS_OK
}

struct Table(VfPlugin);
// The table only points to statics.
unsafe impl Sync for Table {}

struct Kinds([v1::VfKind; 1]);
unsafe impl Sync for Kinds {}

static KINDS: Kinds = Kinds([v1::VfKind {
    decl_json: DECL.as_ptr(),
    run: Some(run),
    user_data: std::ptr::null(),
}]);

static TABLE: Table = Table(VfPlugin {
    abi_version: v1::ABI_VERSION,
    n_kinds: 1,
    kinds: &KINDS.0 as *const [v1::VfKind; 1] as *const voxflow_plugin_abi::VfKind,
    name: c"v1_legacy".as_ptr(),
});

#[no_mangle]
pub extern "C" fn voxflow_plugin_entry() -> *const VfPlugin {
    &TABLE.0
}
