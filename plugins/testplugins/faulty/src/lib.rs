//! Test plugin: nodes that panic, fail, forget their output, or allocate the wrong type.

use voxflow_plugin_abi::{export_plugin, Call, Stream};

const PANICS: &str = r#"{
  "kind": "test_panics",
  "about": "panics",
  "inputs": [{ "name": "in", "type": "label" }],
  "outputs": [{ "name": "out", "type": "label" }]
}"#;

const FAILS: &str = r#"{
  "kind": "test_fails",
  "about": "returns an error",
  "inputs": [{ "name": "in", "type": "label" }],
  "outputs": [{ "name": "out", "type": "label" }]
}"#;

const NO_OUTPUT: &str = r#"{
  "kind": "test_no_output",
  "about": "returns success without allocating its output",
  "inputs": [{ "name": "in", "type": "label" }],
  "outputs": [{ "name": "out", "type": "label" }]
}"#;

const BAD_ALLOC: &str = r#"{
  "kind": "test_bad_alloc",
  "about": "allocates an image on its label output",
  "inputs": [{ "name": "in", "type": "label" }],
  "outputs": [{ "name": "out", "type": "label" }]
}"#;

export_plugin!(
    "faulty",
    [
        (PANICS, panics),
        (FAILS, fails),
        (NO_OUTPUT, no_output),
        (BAD_ALLOC, bad_alloc)
    ]
);

fn panics(call: &mut Call) -> Result<(), String> {
    let n = call.input(0).map(|i| i.geometry().len()).unwrap_or(0);
    panic!("test_panics was asked to process {n} voxels");
}

fn fails(_call: &mut Call) -> Result<(), String> {
    Err("test_fails refuses this volume".into())
}

fn no_output(_call: &mut Call) -> Result<(), String> {
    Ok(())
}

fn bad_alloc(call: &mut Call) -> Result<(), String> {
    let g = call.input(0).ok_or("no input")?.geometry();
    call.output_floats(0, &g.with_stream(Stream::Image, 1))?;
    Ok(())
}
