//! `drop_unsure_components`: relabel the 3D components of one class over which another
//! network's mean probability is low (issue 17: false lesions beside the liver).

use super::drop_small_components::{
    relabel_and_emit, relabel_components, same_class_error, NeighbourParam,
};
use super::drop_thin_components::component_thickness;
use crate::features::component_extents;
use crate::inference::liver::class_channel;
use ndarray::{Array3, Axis, Zip};
use serde::Deserialize;
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::{StreamType, Volume};
use voxflow_runtime::{
    BuildEnv, Header, Node, NodeCtx, NodeDecl, NodeError, NodeParams, TypedKind,
};
use voxflow_volume::{component_sizes, Connectivity};

pub struct DropUnsureComponents;

const DOCS: &str = r#"
Removes the islands of one class over which a probability map is low on average: every
connected component (in 3D) of the voxels labelled `class` whose mean probability in `prob`
(one channel) is below `min_mean_prob` gets the label `replace_with`.

With `max_thickness_mm` only the components thinner than that are relabelled, thickness
measured as `drop_thin_components` does (twice the largest distance in mm from a voxel of the
component to the nearest voxel outside it): thick components stay whatever the probability.

In the CT graph it runs on the lesion class with the liver network's probabilities
(`min_lesion_liver_prob`, `max_unsure_lesion_thickness_mm`): on CT volumes it never saw, the
liver network can take a rim of heart or stomach into the liver mask, darker than the liver,
and the lesion network calls that rim lesion; the liver network is unsure there, and the rim
is mostly thin. The graph has it off (0). Values chosen on synthetic tumours and healthy livers that no
network of the graph trained on removed most false lesions of the healthy test livers but also
real tumours: 0.8 without a thickness limit large ones at the liver's edge, over which the
liver network is unsure too; 0.9 with 12 mm, which spares thick lesions, small ones
(docs/RESULTS.md).

The channel of `prob`: `prob_class` (a class name of the stream), or `prob_channel`, or, when
neither is set, channel 1 of a 2-channel stream. The probabilities are read slice by slice and
only that channel is kept (to 1/65535); then the label volume is gathered. Geometry, slice and
header metadata of `in` pass through; `prob` must have the same shape. `min_mean_prob: 0`
streams the label through unchanged, slice by slice, keeping nothing of `prob`.
"#;

/// Params of `drop_unsure_components`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct UnsureParams {
    /// the class whose components are filtered
    #[param(default = 2, min = 1)]
    pub class: u8,
    /// components of `class` whose mean probability is below this are relabelled; 0 = keep all
    #[param(min = 0, max = 1)]
    pub min_mean_prob: f64,
    /// only components thinner than this (mm, as `drop_thin_components` measures) are relabelled; 0 = any
    #[param(default = 0.0, min = 0)]
    pub max_thickness_mm: f64,
    /// the label the voxels of a dropped component get
    #[param(default = 1)]
    pub replace_with: u8,
    /// the class of `prob` whose probability is averaged, by name
    pub prob_class: Option<String>,
    /// the channel of `prob` whose probability is averaged
    pub prob_channel: Option<usize>,
    /// which neighbours join a component
    #[param(default = NeighbourParam::Corners)]
    pub connectivity: NeighbourParam,
}

impl TypedKind for DropUnsureComponents {
    type Params = UnsureParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            "drop_unsure_components",
            "Relabel the 3D components of one class over which a probability is low on average",
        )
        .docs(DOCS)
        .input("in", PortType::Fixed(StreamType::Label), "label volume")
        .input(
            "prob",
            PortType::Fixed(StreamType::Prob),
            "probabilities on the same grid (e.g. the liver network's)",
        )
        .output(
            "out",
            PortType::Fixed(StreamType::Label),
            "the label with the unsure components of `class` relabelled",
        )
    }

    fn check_params(&self, p: &UnsureParams) -> Vec<(String, String)> {
        let mut errors: Vec<_> = same_class_error(p.class, p.replace_with)
            .into_iter()
            .collect();
        if p.prob_class.is_some() && p.prob_channel.is_some() {
            errors.push((
                "prob_channel".into(),
                "set either prob_class or prob_channel, not both".into(),
            ));
        }
        errors
    }

    fn create(&self, p: UnsureParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(DropUnsureComponentsNode { p }))
    }
}

struct DropUnsureComponentsNode {
    p: UnsureParams,
}

/// Quantisation of the kept probability channel.
const PROB_STEPS: f64 = 65535.0;

/// The channel of `prob` the params name (see the node docs).
fn prob_channel(p: &UnsureParams, h: &Header) -> Result<usize, String> {
    match (&p.prob_class, p.prob_channel) {
        (Some(name), _) => class_channel(h, name, None, "prob"),
        (None, explicit @ Some(_)) => class_channel(h, "", explicit, "prob"),
        (None, None) if h.channels == 2 => Ok(1),
        (None, None) => Err(format!(
            "input `prob` has {} channels; set prob_class or prob_channel",
            h.channels
        )),
    }
}

/// Relabels, in place, the components of `class` in `label` whose mean of `prob` (in units of
/// 1/`PROB_STEPS`) is below `min_mean_prob` to `replace_with`, with `thinner_than` (mm, voxel
/// spacing) only those of them thinner than that; returns how many components were dropped and
/// how many kept.
pub fn drop_unsure(
    label: &mut Array3<u8>,
    prob: &Array3<u16>,
    class: u8,
    min_mean_prob: f64,
    thinner_than: Option<(f64, [f64; 3])>,
    replace_with: u8,
    connectivity: Connectivity,
) -> (usize, usize) {
    relabel_components(label, class, replace_with, connectivity, |bbox, ids, n| {
        let mut sum = vec![0u64; n];
        Zip::from(ids).and(prob.slice(bbox)).for_each(|&id, &q| {
            if id > 0 {
                sum[id as usize - 1] += u64::from(q);
            }
        });
        let unsure: Vec<bool> = sum
            .iter()
            .zip(&component_sizes(ids.view(), n))
            .map(|(&s, &c)| (s as f64) < min_mean_prob * PROB_STEPS * c as f64)
            .collect();
        let Some((mm, spacing)) = thinner_than else {
            return unsure;
        };
        // Only the unsure components are measured.
        component_thickness(ids, &component_extents(ids, n), spacing, &unsure)
            .into_iter()
            .map(|t| t < mm)
            .collect()
    })
}

impl Node for DropUnsureComponentsNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        if self.p.min_mean_prob == 0.0 {
            return self.pass_through(ctx);
        }
        // The probabilities first, one channel of them kept as they come: the label comes only
        // after the whole cascade upstream (its slices wait in the queue meanwhile).
        let mut kept: Option<(usize, Array3<u16>)> = None;
        let mut zip = ctx.zip_draining(&["prob", "in"], 0, |h, s| {
            if kept.is_none() {
                let ch = prob_channel(&self.p, h).map_err(NodeError::msg)?;
                kept = Some((ch, Array3::zeros(h.shape)));
            }
            let (ch, prob) = kept.as_mut().expect("set above");
            let p = s.data.prob().expect("prob stream");
            Zip::from(prob.index_axis_mut(Axis(0), s.index))
                .and(p.index_axis(Axis(0), *ch))
                .for_each(|q, &x| *q = (f64::from(x.clamp(0.0, 1.0)) * PROB_STEPS).round() as u16);
            Ok(())
        })?;
        let (prob_h, label_h) = (zip.header(0).clone(), zip.header(1).clone());
        check_inputs(&self.p, &prob_h, &label_h)?;
        let prob = match kept {
            Some((_, prob)) => prob,
            None => Array3::zeros(prob_h.shape),
        };
        let mut label = Volume::zeros((*label_h).clone());
        ctx.drain_input(&mut zip, 1, |s| {
            label.put(s);
            Ok(())
        })?;
        relabel_and_emit(ctx, label, "unsure", |label, header| {
            drop_unsure(
                label,
                &prob,
                self.p.class,
                self.p.min_mean_prob,
                (self.p.max_thickness_mm > 0.0)
                    .then_some((self.p.max_thickness_mm, header.spacing)),
                self.p.replace_with,
                self.p.connectivity.into(),
            )
        })
    }
}

impl DropUnsureComponentsNode {
    /// `min_mean_prob: 0`: the label streams through as it comes, the probabilities are read
    /// and checked but not kept.
    fn pass_through(&self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let mut zip = ctx.zip_draining(&["prob", "in"], 0, |_, _| Ok(()))?;
        let (prob_h, label_h) = (zip.header(0).clone(), zip.header(1).clone());
        check_inputs(&self.p, &prob_h, &label_h)?;
        ctx.set_total(label_h.num_slices());
        ctx.send_header("out", (*label_h).clone())?;
        while let Some(a) = ctx.next_aligned(&mut zip)? {
            if let Some(s) = &a.slices[1] {
                ctx.forward_slice("out", s.clone())?;
                ctx.tick();
            }
        }
        ctx.end("out")
    }
}

/// The two inputs' headers agree and `prob` has the channel the params name.
fn check_inputs(p: &UnsureParams, prob_h: &Header, label_h: &Header) -> Result<usize, NodeError> {
    if prob_h.shape != label_h.shape {
        return Err(NodeError::msg(format!(
            "input `prob` has {:?} voxels (slices, rows, columns) but `in` has {:?}",
            prob_h.shape, label_h.shape
        )));
    }
    prob_channel(p, prob_h).map_err(NodeError::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(p: f64) -> u16 {
        (p * PROB_STEPS).round() as u16
    }

    #[test]
    fn components_go_by_their_mean_probability() {
        let mut l = Array3::<u8>::from_elem((3, 6, 6), 1);
        let mut prob = Array3::<u16>::from_elem((3, 6, 6), q(0.95));
        // Island A (2 voxels): probabilities 0.9 and 0.5, mean 0.7.
        l[[0, 0, 0]] = 2;
        l[[0, 0, 1]] = 2;
        prob[[0, 0, 1]] = q(0.5);
        // Island B (1 voxel, apart from A): 0.6.
        l[[2, 5, 5]] = 2;
        prob[[2, 5, 5]] = q(0.6);
        prob[[0, 0, 0]] = q(0.9);
        let mut at_055 = l.clone();
        // min 0.7 keeps A (mean 0.7 is not below it) and drops B.
        assert_eq!(
            drop_unsure(&mut l, &prob, 2, 0.7, None, 1, Connectivity::TwentySix),
            (1, 1)
        );
        assert_eq!(l[[0, 0, 1]], 2);
        assert_eq!(l[[2, 5, 5]], 1);
        // min 0.55 keeps both; min 0.71 drops both.
        assert_eq!(
            drop_unsure(
                &mut at_055,
                &prob,
                2,
                0.55,
                None,
                1,
                Connectivity::TwentySix
            ),
            (0, 2)
        );
        assert_eq!(
            drop_unsure(
                &mut at_055,
                &prob,
                2,
                0.71,
                None,
                0,
                Connectivity::TwentySix
            ),
            (2, 0)
        );
        assert_eq!(at_055[[0, 0, 0]], 0);
        assert_eq!(at_055.iter().filter(|&&x| x == 2).count(), 0);
    }

    #[test]
    fn a_thickness_limit_spares_thick_components() {
        let mut l = Array3::<u8>::from_elem((3, 6, 6), 1);
        let prob = Array3::<u16>::from_elem((3, 6, 6), q(0.5));
        // A: 1 voxel, 2 mm thick at 1 mm spacing. B: 3 x 3 x 3 voxels, 4 mm thick.
        l[[0, 0, 0]] = 2;
        for k in 0..3 {
            for j in 3..6 {
                for i in 3..6 {
                    l[[k, j, i]] = 2;
                }
            }
        }
        let mut all = l.clone();
        // Both are unsure (0.5 < 0.7); under 3 mm only A goes, under 5 mm both.
        assert_eq!(
            drop_unsure(
                &mut l,
                &prob,
                2,
                0.7,
                Some((3.0, [1.0; 3])),
                1,
                Connectivity::TwentySix
            ),
            (1, 1)
        );
        assert_eq!(l[[0, 0, 0]], 1);
        assert_eq!(l[[1, 4, 4]], 2);
        assert_eq!(
            drop_unsure(
                &mut all,
                &prob,
                2,
                0.7,
                Some((5.0, [1.0; 3])),
                1,
                Connectivity::TwentySix
            ),
            (2, 0)
        );
    }

    #[test]
    fn zero_minimum_keeps_everything() {
        let mut l = Array3::<u8>::zeros((2, 3, 3));
        l[[0, 0, 0]] = 2;
        l[[1, 2, 2]] = 3;
        let before = l.clone();
        let prob = Array3::<u16>::zeros((2, 3, 3));
        assert_eq!(
            drop_unsure(&mut l, &prob, 2, 0.0, None, 1, Connectivity::TwentySix),
            (0, 1)
        );
        assert_eq!(l, before);
    }
}
