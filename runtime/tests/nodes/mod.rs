//! Test node kinds for the executor tests: a counting source, per-slice and fan-in nodes, a
//! branch that holds the whole volume, a slice-aligned sum and a slow file sink.

use ndarray::Array2;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use voxflow_runtime::decl::{ParamType, PortType};
use voxflow_runtime::stream::{Header, SliceData, StreamType};
use voxflow_runtime::{BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeKind, Params, Slice};

pub const IMG: PortType = PortType::Fixed(StreamType::Image);

/// Emits `n` slices of 4x4 filled with the slice index; counts how many it has sent.
pub struct Source(pub Arc<AtomicUsize>);
impl NodeKind for Source {
    fn decl(&self) -> NodeDecl {
        NodeDecl::new("source", "test source")
            .output("out", IMG, "")
            .param(
                "n",
                ParamType::Int {
                    min: Some(1),
                    max: None,
                },
                10,
                "",
            )
            .param(
                "fail_at",
                ParamType::Int {
                    min: None,
                    max: None,
                },
                -1,
                "",
            )
    }
    fn build(&self, p: &Params, _: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(SourceNode {
            n: p.usize("n")?,
            fail_at: p.i64("fail_at")?,
            sent: self.0.clone(),
        }))
    }
}
pub struct SourceNode {
    n: usize,
    fail_at: i64,
    sent: Arc<AtomicUsize>,
}
impl Node for SourceNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        ctx.send_header(
            "out",
            Header::new(StreamType::Image, [self.n, 4, 4], [1.0; 3]),
        )?;
        for k in 0..self.n {
            if k as i64 == self.fail_at {
                return Err(NodeError::msg(format!("broken slice {k}")));
            }
            ctx.send_slice(
                "out",
                Slice::new(k, SliceData::Image(Array2::from_elem((4, 4), k as f32))),
            )?;
            self.sent.fetch_add(1, Ordering::SeqCst);
        }
        ctx.end("out")
    }
}

/// Adds a constant to every pixel.
pub struct AddKind;
impl NodeKind for AddKind {
    fn decl(&self) -> NodeDecl {
        NodeDecl::new("add", "")
            .input("in", IMG, "")
            .output("out", IMG, "")
            .param(
                "v",
                ParamType::Float {
                    min: None,
                    max: None,
                    min_exclusive: false,
                    max_exclusive: false,
                },
                1.0,
                "",
            )
    }
    fn build(&self, p: &Params, _: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(Add(p.f64("v")? as f32)))
    }
}
pub struct Add(f32);
impl Node for Add {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let h = ctx.header("in")?;
        ctx.send_header("out", (*h).clone())?;
        while let Some(s) = ctx.next_slice("in")? {
            let a = s.data.image().unwrap() + self.0;
            ctx.send_slice("out", Slice::new(s.index, SliceData::Image(a)))?;
        }
        ctx.end("out")
    }
}

/// Sums two streams slice by slice (fan-in) after gathering both.
pub struct SumKind;
impl NodeKind for SumKind {
    fn decl(&self) -> NodeDecl {
        NodeDecl::new("sum", "")
            .input("a", IMG, "")
            .input("b", IMG, "")
            .output("out", IMG, "")
    }
    fn build(&self, _: &Params, _: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(Sum))
    }
}
pub struct Sum;
impl Node for Sum {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let v = ctx.gather_many(&["a", "b"])?;
        let mut out = v[0].clone();
        if let (voxflow_runtime::VolumeData::Image(x), Some(y)) = (&mut out.data, v[1].image()) {
            *x += y;
        }
        ctx.emit_volume("out", &out)
    }
}

/// Gathers the whole volume, then emits the slices whose index is a multiple of `every`, in
/// increasing order or (`reverse: 1`) decreasing order: a branch that buffers everything.
pub struct HoldKind;
impl NodeKind for HoldKind {
    fn decl(&self) -> NodeDecl {
        let int = ParamType::Int {
            min: Some(0),
            max: None,
        };
        NodeDecl::new("hold", "")
            .input("in", IMG, "")
            .output("out", IMG, "")
            .param("every", int.clone(), 1, "")
            .param("reverse", int, 0, "")
    }
    fn build(&self, p: &Params, _: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(Hold {
            every: p.usize("every")?.max(1),
            reverse: p.usize("reverse")? == 1,
        }))
    }
}
pub struct Hold {
    every: usize,
    reverse: bool,
}
impl Node for Hold {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let v = ctx.gather("in")?;
        ctx.send_header("out", v.header.clone())?;
        let mut ks: Vec<usize> = (0..v.header.num_slices())
            .filter(|k| k % self.every == 0)
            .collect();
        if self.reverse {
            ks.reverse();
        }
        for k in ks {
            ctx.send_slice("out", Slice::new(k, v.slice(k)))?;
        }
        ctx.end("out")
    }
}

/// Sums two streams slice by slice as they arrive (`NodeCtx::zip`); a missing slice counts 0.
/// `drain: 1` (or 2) reads input `a` (or `b`) whole first (`NodeCtx::drain_input`).
pub struct ZipSumKind;
impl NodeKind for ZipSumKind {
    fn decl(&self) -> NodeDecl {
        NodeDecl::new("zipsum", "")
            .input("a", IMG, "")
            .input("b", IMG, "")
            .output("out", IMG, "")
            .param(
                "drain",
                ParamType::Int {
                    min: Some(0),
                    max: Some(2),
                },
                0,
                "",
            )
    }
    fn build(&self, p: &Params, _: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(ZipSum {
            drain: p.usize("drain")?.checked_sub(1),
        }))
    }
}
pub struct ZipSum {
    drain: Option<usize>,
}
impl Node for ZipSum {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let mut zip = ctx.zip(&["a", "b"])?;
        let mut drained = std::collections::BTreeMap::new();
        if let Some(n) = self.drain {
            ctx.drain_input(&mut zip, n, |s| {
                drained.insert(s.index, s.data.image().unwrap().clone());
                Ok(())
            })?;
        }
        ctx.send_header("out", (**zip.header(0)).clone())?;
        let mut last = None;
        while let Some(al) = ctx.next_aligned(&mut zip)? {
            assert!(last.is_none_or(|l| al.index > l), "indices out of order");
            last = Some(al.index);
            let mut sum = drained
                .remove(&al.index)
                .unwrap_or_else(|| Array2::<f32>::zeros((4, 4)));
            for (n, s) in al.slices.iter().enumerate() {
                let Some(s) = s else { continue };
                assert_ne!(Some(n), self.drain, "a drained input yields nothing more");
                assert_eq!(s.index, al.index);
                sum += s.data.image().unwrap();
            }
            ctx.send_slice("out", Slice::new(al.index, SliceData::Image(sum)))?;
        }
        assert!(drained.is_empty(), "slices only the drained input had");
        ctx.end("out")
    }
}

/// Writes the sum of all pixels to a file (through the runtime's atomic output), slowly.
pub struct SinkKind(pub Arc<AtomicUsize>);
impl NodeKind for SinkKind {
    fn decl(&self) -> NodeDecl {
        NodeDecl::new("sink", "")
            .input("in", IMG, "")
            .required("path", ParamType::Path, "")
            .param(
                "delay_ms",
                ParamType::Int {
                    min: Some(0),
                    max: None,
                },
                0,
                "",
            )
    }
    fn build(&self, p: &Params, _: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(Sink {
            path: p.path("path")?,
            delay: Duration::from_millis(p.usize("delay_ms")? as u64),
            producer_sent: self.0.clone(),
            max_lead: 0,
        }))
    }
}
pub struct Sink {
    path: std::path::PathBuf,
    delay: Duration,
    producer_sent: Arc<AtomicUsize>,
    max_lead: usize,
}
impl Node for Sink {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        ctx.header("in")?;
        let tmp = ctx.output_file(&self.path)?;
        let mut total = 0.0f64;
        let mut seen = 0usize;
        while let Some(s) = ctx.next_slice("in")? {
            seen += 1;
            let lead = self
                .producer_sent
                .load(Ordering::SeqCst)
                .saturating_sub(seen);
            self.max_lead = self.max_lead.max(lead);
            total += s.data.image().unwrap().sum() as f64;
            std::fs::write(&tmp, format!("partial {total}")).unwrap();
            std::thread::sleep(self.delay);
        }
        std::fs::write(&tmp, format!("{total} {}", self.max_lead)).unwrap();
        Ok(())
    }
}
