//! Test plugin: declares `hu_window`, which is a built-in kind.

use voxflow_plugin_abi::{export_plugin, Call};

const DECL: &str = r#"{
  "kind": "hu_window",
  "about": "clashes with the built-in",
  "inputs": [{ "name": "in", "type": "image" }],
  "outputs": [{ "name": "out", "type": "image" }]
}"#;

export_plugin!("clash", [(DECL, run)]);

fn run(_call: &mut Call) -> Result<(), String> {
    Ok(())
}
