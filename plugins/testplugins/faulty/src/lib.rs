//! Test plugin: nodes that panic, fail, forget their output, or allocate the wrong type; and
//! streaming nodes that panic mid-stream, send slices out of order, of the wrong size, skip one,
//! or never open their output.

use voxflow_plugin_abi::{export_plugin, Call, Emit, Slices, Start, Stream, StreamKind};

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

/// A streaming fault: the kind name and what goes wrong.
macro_rules! stream_decl {
    ($kind:literal) => {
        concat!(
            r#"{ "kind": ""#,
            $kind,
            r#"", "about": "a faulty streaming node", "inputs": [{ "name": "in", "type": "label" }], "outputs": [{ "name": "out", "type": "label" }] }"#
        )
    };
}

export_plugin!(
    "faulty",
    [
        (PANICS, panics),
        (FAILS, fails),
        (NO_OUTPUT, no_output),
        (BAD_ALLOC, bad_alloc),
        stream(stream_decl!("test_stream_panics"), PanicsAtSlice1),
        stream(stream_decl!("test_stream_twice"), SendsTwice),
        stream(stream_decl!("test_stream_short"), SendsShort),
        stream(stream_decl!("test_stream_skips"), SkipsSlice1),
        stream(stream_decl!("test_stream_unopened"), NeverOpens),
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

/// Opens the output like the input and returns the slice length.
fn open(start: &mut Start) -> Result<usize, String> {
    let g = start.input(0).ok_or("no input")?;
    start.open_output(0, &g)?;
    Ok(g.slice_len())
}

/// Copies slice k of the input to the output.
fn pass(slices: &Slices, emit: &mut Emit, len: usize) -> Result<(), String> {
    let zeros = vec![0; len];
    emit.labels(0, slices.index(), slices.labels(0).unwrap_or(&zeros))
}

/// Panics in its second `slice` call. When dropped (the host's `finish` after the stopped run)
/// it creates the file named by `VFTEST_DROP_MARKER`, if set.
struct PanicsAtSlice1(usize);

impl StreamKind for PanicsAtSlice1 {
    fn start(start: &mut Start) -> Result<Self, String> {
        open(start).map(PanicsAtSlice1)
    }
    fn slice(&mut self, slices: &Slices, emit: &mut Emit) -> Result<(), String> {
        if slices.index() == 1 {
            panic!("test_stream_panics at slice 1");
        }
        pass(slices, emit, self.0)
    }
}

impl Drop for PanicsAtSlice1 {
    fn drop(&mut self) {
        if let Some(p) = std::env::var_os("VFTEST_DROP_MARKER") {
            let _ = std::fs::write(p, "dropped\n");
        }
    }
}

/// Sends every slice twice.
struct SendsTwice(usize);

impl StreamKind for SendsTwice {
    fn start(start: &mut Start) -> Result<Self, String> {
        open(start).map(SendsTwice)
    }
    fn slice(&mut self, slices: &Slices, emit: &mut Emit) -> Result<(), String> {
        pass(slices, emit, self.0)?;
        pass(slices, emit, self.0)
    }
}

/// Sends slices one voxel short.
struct SendsShort(usize);

impl StreamKind for SendsShort {
    fn start(start: &mut Start) -> Result<Self, String> {
        open(start).map(SendsShort)
    }
    fn slice(&mut self, slices: &Slices, emit: &mut Emit) -> Result<(), String> {
        emit.labels(0, slices.index(), &vec![0; self.0 - 1])
    }
}

/// Sends every slice but slice 1.
struct SkipsSlice1(usize);

impl StreamKind for SkipsSlice1 {
    fn start(start: &mut Start) -> Result<Self, String> {
        open(start).map(SkipsSlice1)
    }
    fn slice(&mut self, slices: &Slices, emit: &mut Emit) -> Result<(), String> {
        if slices.index() == 1 {
            return Ok(());
        }
        pass(slices, emit, self.0)
    }
}

/// Starts without opening its output.
struct NeverOpens;

impl StreamKind for NeverOpens {
    fn start(_start: &mut Start) -> Result<Self, String> {
        Ok(NeverOpens)
    }
    fn slice(&mut self, _slices: &Slices, _emit: &mut Emit) -> Result<(), String> {
        Ok(())
    }
}
