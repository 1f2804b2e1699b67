//! Test plugin: streaming kinds whose outputs record how the host called them.
//! - `test_slice_calls`: output slice k is filled with the number of `slice` calls so far, sent
//!   from within that call (so a host that gathered first would still show 1, 2, 3, ...).
//! - `test_hold_back`: sends nothing from `slice`; `finish` sends every slice, each filled with
//!   the input slice's label sum modulo 256.

use voxflow_plugin_abi::{export_plugin, Emit, Geometry, Slices, Start, Stream, StreamKind};

const CALLS: &str = r#"{
  "kind": "test_slice_calls",
  "about": "slice k = number of slice calls so far",
  "inputs": [{ "name": "in", "type": "label" }],
  "outputs": [{ "name": "out", "type": "image" }]
}"#;

const HOLD_BACK: &str = r#"{
  "kind": "test_hold_back",
  "about": "sends every slice from finish",
  "inputs": [{ "name": "in", "type": "label" }],
  "outputs": [{ "name": "out", "type": "label" }]
}"#;

export_plugin!(
    "stream_probe",
    [stream(CALLS, SliceCalls), stream(HOLD_BACK, HoldBack)]
);

fn open_like_input(start: &mut Start, stream: Stream) -> Result<Geometry, String> {
    let g = start
        .input(0)
        .ok_or("input `in` is not connected")?
        .with_stream(stream, 1);
    start.open_output(0, &g)?;
    Ok(g)
}

struct SliceCalls {
    calls: usize,
    slice_len: usize,
}

impl StreamKind for SliceCalls {
    fn start(start: &mut Start) -> Result<Self, String> {
        let g = open_like_input(start, Stream::Image)?;
        Ok(SliceCalls {
            calls: 0,
            slice_len: g.slice_len(),
        })
    }
    fn slice(&mut self, slices: &Slices, emit: &mut Emit) -> Result<(), String> {
        self.calls += 1;
        emit.floats(0, slices.index(), &vec![self.calls as f32; self.slice_len])
    }
}

struct HoldBack {
    /// (k, label sum modulo 256) of every slice seen.
    sums: Vec<(usize, u8)>,
    slice_len: usize,
}

impl StreamKind for HoldBack {
    fn start(start: &mut Start) -> Result<Self, String> {
        let g = open_like_input(start, Stream::Label)?;
        Ok(HoldBack {
            sums: Vec::new(),
            slice_len: g.slice_len(),
        })
    }
    fn slice(&mut self, slices: &Slices, _emit: &mut Emit) -> Result<(), String> {
        let sum = slices
            .labels(0)
            .map_or(0, |l| l.iter().map(|&v| v as usize).sum::<usize>());
        self.sums.push((slices.index(), (sum % 256) as u8));
        Ok(())
    }
    fn finish(&mut self, emit: &mut Emit) -> Result<(), String> {
        for &(k, s) in &self.sums {
            emit.labels(0, k, &vec![s; self.slice_len])?;
        }
        Ok(())
    }
}
