//! `hu_window`: clip intensities to a window.

use serde::{Deserialize, Serialize};
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::{SliceData, StreamType};
use voxflow_runtime::{
    BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeParams, ParamEnum, Slice, TypedKind,
};

pub struct HuWindow;

/// Whether the window is mapped to [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, ParamEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    None,
    Unit,
}

/// Params of `hu_window`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct HuWindowParams {
    /// lower bound
    #[param(default = -100.0)]
    pub min: f32,
    /// upper bound
    #[param(default = 400.0)]
    pub max: f32,
    /// values above this become 0 before clipping
    pub zero_above: Option<f32>,
    /// `unit` maps the window to [0, 1]
    #[param(default = Scale::None)]
    pub scale: Scale,
}

impl TypedKind for HuWindow {
    type Params = HuWindowParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new("hu_window", "Clip intensities to [min, max] (the paper: [-100, 400] HU)")
            .docs(
                "Per voxel: if `zero_above` is set, values above it become 0 first (the authors' \
                 code sets HU > 1200 to 0); then the value is clipped to `[min, max]`; with \
                 `scale: unit` it is mapped linearly to [0, 1]. The output declares its value range \
                 (the window, or [0, 1]) so that `equalize` can use it.",
            )
            .input("in", PortType::Fixed(StreamType::Image), "image")
            .output("out", PortType::Fixed(StreamType::Image), "windowed image")
    }

    fn check_params(&self, p: &HuWindowParams) -> Vec<(String, String)> {
        if p.min >= p.max {
            return vec![(
                "max".into(),
                format!("must be greater than min ({})", p.min),
            )];
        }
        vec![]
    }

    fn create(&self, p: HuWindowParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(Window {
            min: p.min,
            max: p.max,
            zero_above: p.zero_above,
            unit: p.scale == Scale::Unit,
        }))
    }
}

pub struct Window {
    pub min: f32,
    pub max: f32,
    pub zero_above: Option<f32>,
    pub unit: bool,
}

impl Window {
    pub fn apply(&self, v: f32) -> f32 {
        let v = match self.zero_above {
            Some(z) if v > z => 0.0,
            _ => v,
        };
        let c = v.clamp(self.min, self.max);
        if self.unit {
            (c - self.min) / (self.max - self.min)
        } else {
            c
        }
    }
}

impl Node for Window {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let mut h = (*ctx.header_of("in", StreamType::Image)?).clone();
        h.value_range = Some(if self.unit {
            (0.0, 1.0)
        } else {
            (self.min as f64, self.max as f64)
        });
        if self.zero_above.is_some() {
            h.meta.remove(crate::meta::PREPROCESS);
        } else {
            let (lo, hi) = (self.min as f64, self.max as f64);
            super::record_step(&mut h, &format!("hu_window:{lo},{hi}"), true);
            if self.unit {
                let step = format!("scale:{},{}", 1.0 / (hi - lo), -lo / (hi - lo));
                super::record_step(&mut h, &step, false);
            }
        }
        ctx.set_total(h.num_slices());
        ctx.send_header("out", h)?;
        while let Some(s) = ctx.next_slice("in")? {
            let img = s
                .data
                .image()
                .expect("image stream")
                .mapv(|v| self.apply(v));
            let mut out = Slice::new(s.index, SliceData::Image(img));
            out.meta = s.meta.clone();
            ctx.send_slice("out", out)?;
            ctx.tick();
        }
        ctx.end("out")
    }
}
