//! Test plugin: a shared library without the entry symbol.

#[no_mangle]
pub extern "C" fn voxflow_plugin_entry_misspelt() -> u32 {
    1
}
