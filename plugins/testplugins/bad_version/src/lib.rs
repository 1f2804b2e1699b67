//! Test plugin: claims ABI version 999.

use voxflow_plugin_abi::VfPlugin;

#[no_mangle]
pub extern "C" fn voxflow_plugin_entry() -> *const VfPlugin {
    Box::leak(Box::new(VfPlugin {
        abi_version: 999,
        n_kinds: 0,
        kinds: std::ptr::null(),
        name: std::ptr::null(),
    }))
}
