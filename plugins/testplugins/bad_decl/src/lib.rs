//! Test plugin: a declaration with an unknown port type.

use voxflow_plugin_abi::{export_plugin, Call};

const DECL: &str = r#"{
  "kind": "bad_decl",
  "about": "declares a port of a type that does not exist",
  "inputs": [{ "name": "in", "type": "voxels" }],
  "outputs": [{ "name": "out", "type": "label" }]
}"#;

export_plugin!("bad_decl", [(DECL, run)]);

fn run(_call: &mut Call) -> Result<(), String> {
    Ok(())
}
