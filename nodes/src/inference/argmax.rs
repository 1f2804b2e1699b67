//! `argmax`: class probabilities -> label.

use ndarray::Array2;
use voxflow_runtime::decl::PortType;
use voxflow_runtime::params::NoParams;
use voxflow_runtime::stream::{SliceData, StreamType};
use voxflow_runtime::{BuildEnv, Node, NodeCtx, NodeDecl, NodeError, Slice, TypedKind};

pub struct Argmax;

impl TypedKind for Argmax {
    type Params = NoParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            "argmax",
            "Label each voxel with its most probable class (prob -> label)",
        )
        .docs(
            "Per voxel, the index of the channel with the highest probability (ties: the lowest \
                 index; NaN never wins). Needs at most 256 channels. Geometry, slice metadata and \
                 header metadata (e.g. `classes`) pass through.",
        )
        .input(
            "in",
            PortType::Fixed(StreamType::Prob),
            "class probabilities",
        )
        .output(
            "out",
            PortType::Fixed(StreamType::Label),
            "label volume (uint8)",
        )
    }

    fn create(&self, _p: NoParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(ArgmaxNode))
    }
}

struct ArgmaxNode;

/// Argmax over axis 0 of `(C, nj, ni)` (see [`argmax_at`]).
pub fn argmax_slice(p: &ndarray::Array3<f32>) -> Array2<u8> {
    let (_, nj, ni) = p.dim();
    Array2::from_shape_fn((nj, ni), |(j, i)| argmax_at(p.view(), j, i))
}

/// The channel with the largest value at `(j, i)` of a `(C, nj, ni)` slice: ties go to the
/// lowest channel, and NaN never wins over a number.
pub fn argmax_at(p: ndarray::ArrayView3<f32>, j: usize, i: usize) -> u8 {
    let mut best = 0;
    for ch in 1..p.dim().0 {
        if p[[ch, j, i]] > p[[best, j, i]] || p[[best, j, i]].is_nan() {
            best = ch;
        }
    }
    best as u8
}

impl Node for ArgmaxNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let h_in = ctx.header_of("in", StreamType::Prob)?;
        if h_in.channels > 256 {
            return Err(NodeError::msg(format!(
                "{} channels do not fit a uint8 label",
                h_in.channels
            )));
        }
        let h = h_in.with_type(StreamType::Label, 1);
        ctx.set_total(h.num_slices());
        ctx.send_header("out", h)?;
        while let Some(s) = ctx.next_slice("in")? {
            let p = s.data.prob().expect("prob stream");
            let mut out = Slice::new(s.index, SliceData::Label(argmax_slice(p)));
            out.meta = s.meta.clone();
            ctx.send_slice("out", out)?;
            ctx.tick();
        }
        ctx.end("out")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn ties_go_low() {
        let p = array![[[0.5f32, 0.2, 0.3]], [[0.5, 0.7, 0.3]], [[0.0, 0.1, 0.4]]];
        assert_eq!(argmax_slice(&p), array![[0u8, 1, 2]]);
    }
}
