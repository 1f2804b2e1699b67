//! `drop_thin_components`: relabel the 3D components of one class that are thin: under a
//! thickness in mm, or under a ball share (issue 17: false lesions along the liver's edge).

use super::drop_small_components::{
    relabel_and_emit, relabel_components, same_class_error, NeighbourParam,
};
use crate::features::{component_extents, Extent};
use ndarray::{s, Array3};
use serde::Deserialize;
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::StreamType;
use voxflow_runtime::{BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeParams, TypedKind};
use voxflow_volume::{edt_squared, Connectivity};

pub struct DropThinComponents;

const DOCS: &str = r#"
Removes thin islands of one class from a label volume: every connected component (in 3D) of
the voxels labelled `class` whose thickness is below `min_thickness_mm`, or whose ball share is
below `min_ball_share`, gets the label `replace_with`. A component's thickness is twice the
largest distance, in mm of the header spacing, from one of its voxels to the nearest voxel
outside it (outside the volume counts as outside): the diameter of the largest ball it holds, to
within a voxel. A ball of 10 mm is about 10 mm thick whatever its voxel size; a band one voxel
wide is two voxel sizes thick. Its ball share is the volume of a ball of that diameter over the
component's volume (both in mm3), at most 1: about 1 for a ball, 0.5 for a cube, 0.25 for an
ellipsoid with axes 1:2:2, a few hundredths for a band or a sheet. So `min_ball_share` removes
components that are thin for their size, and keeps small round ones however thin.

The CT graph uses a ball share of 0.04 (`min_lesion_ball_share`, and never `min_thickness_mm`):
the false lesions of a liver mask that takes in a rim of a neighbouring organ are such bands
along the mask's edge. The value was chosen on synthetic tumours and healthy livers that no
network of the graph trained on, with a liver network that reads neighbouring slices as the
default one does; a thickness of 12 mm, or 0.04 with the mask's threshold at 0.67, also removed
small real tumours (docs/RESULTS.md).

The node gathers the whole volume; geometry, slice and header metadata pass through. With both
limits 0 it streams the label through unchanged, slice by slice.
"#;

/// Params of `drop_thin_components`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct ThinParams {
    /// the class whose components are filtered
    #[param(default = 2, min = 1)]
    pub class: u8,
    /// components of `class` thinner than this (mm) are relabelled; 0 = keep all
    #[param(default = 0.0, min = 0)]
    pub min_thickness_mm: f64,
    /// components of `class` whose ball share is below this are relabelled; 0 = keep all
    #[param(default = 0.0, min = 0, max = 1)]
    pub min_ball_share: f64,
    /// the label the voxels of a dropped component get
    #[param(default = 1)]
    pub replace_with: u8,
    /// which neighbours join a component
    #[param(default = NeighbourParam::Corners)]
    pub connectivity: NeighbourParam,
}

impl TypedKind for DropThinComponents {
    type Params = ThinParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            "drop_thin_components",
            "Relabel the thin 3D components of one class: under a thickness in mm or a ball share",
        )
        .docs(DOCS)
        .input("in", PortType::Fixed(StreamType::Label), "label volume")
        .output(
            "out",
            PortType::Fixed(StreamType::Label),
            "the label with the thin components of `class` relabelled",
        )
    }

    fn check_params(&self, p: &ThinParams) -> Vec<(String, String)> {
        same_class_error(p.class, p.replace_with)
            .into_iter()
            .collect()
    }

    fn create(&self, p: ThinParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(DropThinComponentsNode { p }))
    }
}

struct DropThinComponentsNode {
    p: ThinParams,
}

/// Per component (ids 1..=n of `ids`, at index id - 1, with their `extents`) whose `measure` flag
/// is set: twice the largest distance in mm from one of its voxels to the nearest voxel outside
/// it, `spacing` in array-axis order; the others get infinity.
pub(crate) fn component_thickness(
    ids: &Array3<u32>,
    extents: &[Extent],
    spacing: [f64; 3],
    measure: &[bool],
) -> Vec<f64> {
    extents
        .iter()
        .zip(measure)
        .enumerate()
        .map(|(c, (extent, &measure))| {
            if !measure {
                return f64::INFINITY;
            }
            let id = c as u32 + 1;
            let inside = ids.slice(extent.bbox());
            // Features of the transform: every voxel outside the component, with a margin of
            // one voxel all round that stands for the rest of the volume.
            let (nk, nj, ni) = inside.dim();
            let mut outside = Array3::from_elem((nk + 2, nj + 2, ni + 2), true);
            outside
                .slice_mut(s![1..nk + 1, 1..nj + 1, 1..ni + 1])
                .zip_mut_with(&inside, |o, &v| *o = v != id);
            let d2 = edt_squared(outside.view(), spacing);
            let max = d2
                .iter()
                .zip(outside.iter())
                .filter(|(_, &o)| !o)
                .map(|(&d, _)| d)
                .fold(0.0, f64::max);
            2.0 * max.sqrt()
        })
        .collect()
}

/// The volume of a ball of diameter `thickness_mm` over that of a component of `voxels` voxels of
/// `spacing` (mm), at most 1.
pub fn ball_share(thickness_mm: f64, voxels: u64, spacing: [f64; 3]) -> f64 {
    let volume = voxels as f64 * spacing.iter().product::<f64>();
    (std::f64::consts::PI / 6.0 * thickness_mm.powi(3) / volume).min(1.0)
}

/// Which components a `drop_thin_components` node relabels: those thinner than `min_thickness_mm`
/// or with a ball share below `min_ball_share` (0: that limit is off).
#[derive(Clone, Copy)]
pub struct ThinLimits {
    pub min_thickness_mm: f64,
    pub min_ball_share: f64,
}

/// Relabels, in place, the components of `class` in `label` that `limits` drop to `replace_with`;
/// returns how many components were dropped and how many kept.
pub fn drop_thin(
    label: &mut Array3<u8>,
    class: u8,
    limits: ThinLimits,
    spacing: [f64; 3],
    replace_with: u8,
    connectivity: Connectivity,
) -> (usize, usize) {
    relabel_components(label, class, replace_with, connectivity, |_, ids, n| {
        let extents = component_extents(ids, n);
        let thickness = component_thickness(ids, &extents, spacing, &vec![true; n]);
        thickness
            .iter()
            .zip(extents.iter().map(|e| e.n as u64))
            .map(|(&t, voxels)| {
                t < limits.min_thickness_mm
                    || ball_share(t, voxels, spacing) < limits.min_ball_share
            })
            .collect()
    })
}

impl Node for DropThinComponentsNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let limits = ThinLimits {
            min_thickness_mm: self.p.min_thickness_mm,
            min_ball_share: self.p.min_ball_share,
        };
        if limits.min_thickness_mm == 0.0 && limits.min_ball_share == 0.0 {
            let h = ctx.header("in")?;
            ctx.set_total(h.num_slices());
            ctx.send_header("out", (*h).clone())?;
            while let Some(s) = ctx.next_slice("in")? {
                ctx.forward_slice("out", s)?;
                ctx.tick();
            }
            return ctx.end("out");
        }
        let v = ctx.gather("in")?;
        relabel_and_emit(ctx, v, "thin", |label, header| {
            drop_thin(
                label,
                self.p.class,
                limits,
                header.spacing,
                self.p.replace_with,
                self.p.connectivity.into(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plate one voxel thick (20 x 20 voxels) and a ball of radius 2.3 voxels, apart.
    fn plate_and_ball() -> Array3<u8> {
        let mut l = Array3::<u8>::from_elem((30, 30, 30), 1);
        for j in 2..22 {
            for k in 2..22 {
                l[[k, j, 2]] = 2;
            }
        }
        for ((k, j, i), v) in l.indexed_iter_mut() {
            let d2 = [k, j, i]
                .iter()
                .map(|&x| (x as i64 - 20).pow(2))
                .sum::<i64>();
            if d2 <= 5 * 5 - 4 {
                *v = 2;
            }
        }
        l
    }

    fn thinner(min_thickness_mm: f64) -> ThinLimits {
        ThinLimits {
            min_thickness_mm,
            min_ball_share: 0.0,
        }
    }

    #[test]
    fn thickness_is_in_millimetres() {
        let l = plate_and_ball();
        let (ids, n) =
            voxflow_volume::label_components(l.mapv(|v| v == 2).view(), Connectivity::TwentySix);
        assert_eq!(n, 2);
        let t = component_thickness(
            &ids,
            &component_extents(&ids, n),
            [2.0, 1.0, 1.0],
            &[true; 2],
        );
        let plate = ids[[2, 2, 2]] as usize - 1;
        let ball = ids[[20, 20, 20]] as usize - 1;
        // The plate is one voxel across i (1 mm): 1 mm to the voxels beside it, twice that.
        assert!((t[plate] - 2.0).abs() < 1e-9, "{}", t[plate]);
        assert!(t[ball] >= 8.0, "{}", t[ball]);
        // The same voxels at 3 mm across i: the plate is 6 mm thick.
        let t3 = component_thickness(
            &ids,
            &component_extents(&ids, n),
            [2.0, 1.0, 3.0],
            &[true; 2],
        );
        assert!((t3[plate] - 6.0).abs() < 1e-9, "{}", t3[plate]);
    }

    #[test]
    fn thin_components_go_round_ones_stay() {
        let mut l = plate_and_ball();
        let ball_voxels = l.iter().filter(|&&v| v == 2).count() - 400;
        assert_eq!(
            drop_thin(
                &mut l,
                2,
                thinner(4.0),
                [2.0, 1.0, 1.0],
                1,
                Connectivity::TwentySix
            ),
            (1, 1)
        );
        assert_eq!(l.iter().filter(|&&v| v == 2).count(), ball_voxels);
        assert_eq!(l[[2, 2, 2]], 1);
        assert_eq!(l[[20, 20, 20]], 2);
        // 0 keeps everything; other classes are never touched.
        let mut all = plate_and_ball();
        all[[0, 0, 0]] = 3;
        let before = all.clone();
        assert_eq!(
            drop_thin(
                &mut all,
                2,
                thinner(0.0),
                [1.0; 3],
                1,
                Connectivity::TwentySix
            ),
            (0, 2)
        );
        assert_eq!(all, before);
    }

    #[test]
    fn ball_share_is_a_ball_over_the_volume_in_mm3() {
        // A ball 10 mm across is 523.6 mm3: over 1000 voxels of 1 mm3 and of 0.5 mm3.
        assert!((ball_share(10.0, 1000, [1.0; 3]) - 523.6 / 1000.0).abs() < 1e-4);
        assert!((ball_share(10.0, 1000, [0.5, 1.0, 1.0]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn flat_components_go_small_round_ones_stay() {
        // The plate (2 mm thick, 400 mm3: share 0.01) goes, the ball (share 1) stays, and so
        // does a single voxel (2 mm thick, 1 mm3: share 1) that a thickness of 4 mm would drop.
        let mut l = plate_and_ball();
        l[[27, 27, 27]] = 2;
        let flat = ThinLimits {
            min_thickness_mm: 0.0,
            min_ball_share: 0.5,
        };
        assert_eq!(
            drop_thin(&mut l, 2, flat, [1.0; 3], 1, Connectivity::TwentySix),
            (1, 2)
        );
        assert_eq!((l[[2, 2, 2]], l[[20, 20, 20]], l[[27, 27, 27]]), (1, 2, 2));
        let mut t = plate_and_ball();
        t[[27, 27, 27]] = 2;
        assert_eq!(
            drop_thin(
                &mut t,
                2,
                thinner(4.0),
                [1.0; 3],
                1,
                Connectivity::TwentySix
            ),
            (2, 1)
        );
        assert_eq!(t[[27, 27, 27]], 1);
    }
}
