//! `drop_small_components`: relabel the 3D components of one class that are smaller than a
//! volume in mm³ (issue 17: false lesions).

use crate::features::{extent, BoxSlice};
use ndarray::{Array3, Zip};
use serde::{Deserialize, Serialize};
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::{Header, StreamType, Volume, VolumeData};
use voxflow_runtime::{
    BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeParams, ParamEnum, TypedKind,
};
use voxflow_volume::{component_sizes, label_components, Connectivity};

pub struct DropSmallComponents;

const DOCS: &str = r#"
Removes small islands of one class from a label volume: every connected component (in 3D) of
the voxels labelled `class` whose volume is below `min_volume_mm3` gets the label
`replace_with`. The volume of a component is its voxel count times the voxel volume of the
header spacing, so a graph means the same at any voxel size.

In the CT cascade it runs after the CRF with `class: 2` (lesion) and `replace_with: 1` (liver):
lesions can only lie in the liver mask (`paste_back`), so a dropped lesion island is liver
again. Its `min_volume_mm3` was chosen on synthetic tumours in BTCV livers that no lesion model
trained on (docs/RESULTS.md), not on the IRCADb test patients.

The node gathers the whole volume (3D components need it); geometry, slice and header metadata
pass through. `min_volume_mm3: 0` passes the label through unchanged.
"#;

/// `connectivity` param: which neighbours join a component.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, ParamEnum)]
#[serde(rename_all = "snake_case")]
pub enum NeighbourParam {
    /// face, edge and corner neighbours (26)
    Corners,
    /// face neighbours only (6)
    Faces,
}

impl From<NeighbourParam> for Connectivity {
    fn from(n: NeighbourParam) -> Self {
        match n {
            NeighbourParam::Corners => Connectivity::TwentySix,
            NeighbourParam::Faces => Connectivity::Six,
        }
    }
}

/// The `check_params` error of a `replace_with` that is the filtered class itself.
pub fn same_class_error(class: u8, replace_with: u8) -> Option<(String, String)> {
    (replace_with == class).then(|| {
        (
            "replace_with".into(),
            format!("{class} is the filtered class itself: nothing would change"),
        )
    })
}

/// Relabels, in place, the components of `class` in `label` that `pick` chooses to
/// `replace_with`; returns how many components were dropped and how many kept. The components
/// are labelled inside the class's bounding box; `pick` gets that box, the component ids there
/// (numbered from 1 as `label_components` does) and their count, and returns one drop flag per
/// component. The mechanism of both component filters.
pub fn relabel_components(
    label: &mut Array3<u8>,
    class: u8,
    replace_with: u8,
    connectivity: Connectivity,
    pick: impl FnOnce(&BoxSlice, &Array3<u32>, usize) -> Vec<bool>,
) -> (usize, usize) {
    let ext = extent(label, |l| l == class);
    if ext.n == 0 {
        return (0, 0);
    }
    let bbox = ext.bbox();
    let mut label = label.slice_mut(bbox);
    let (ids, n) = label_components(label.mapv(|l| l == class).view(), connectivity);
    let drop = pick(&bbox, &ids, n);
    Zip::from(&mut label).and(&ids).for_each(|l, &id| {
        if id > 0 && drop[id as usize - 1] {
            *l = replace_with;
        }
    });
    let dropped = drop.iter().filter(|&&d| d).count();
    (dropped, drop.len() - dropped)
}

/// The end of both component filters: relabels the gathered label volume `v` with `relabel`
/// (which returns the components dropped and kept), logs the counts as `what` components and
/// emits the volume on `out`.
pub fn relabel_and_emit(
    ctx: &mut NodeCtx,
    v: Volume,
    what: &str,
    relabel: impl FnOnce(&mut Array3<u8>, &Header) -> (usize, usize),
) -> Result<(), NodeError> {
    let Volume {
        header,
        data,
        slice_meta,
    } = v;
    let VolumeData::Label(mut label) = data else {
        return Err(NodeError::msg("input `in` is not a label volume"));
    };
    ctx.set_total(1);
    let (dropped, kept) = relabel(&mut label, &header);
    tracing::info!(
        node = ctx.id(),
        dropped,
        kept,
        "{what} components relabelled"
    );
    ctx.tick();
    ctx.emit_volume(
        "out",
        &Volume {
            header,
            data: VolumeData::Label(label),
            slice_meta,
        },
    )
}

/// Params of `drop_small_components`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct DropParams {
    /// the class whose components are filtered
    #[param(default = 2, min = 1)]
    pub class: u8,
    /// components of `class` smaller than this volume (mm³) are relabelled; 0 = keep all
    #[param(min = 0)]
    pub min_volume_mm3: f64,
    /// the label the voxels of a dropped component get
    #[param(default = 1)]
    pub replace_with: u8,
    /// which neighbours join a component
    #[param(default = NeighbourParam::Corners)]
    pub connectivity: NeighbourParam,
}

impl TypedKind for DropSmallComponents {
    type Params = DropParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            "drop_small_components",
            "Relabel the 3D components of one class smaller than a volume in mm³",
        )
        .docs(DOCS)
        .input("in", PortType::Fixed(StreamType::Label), "label volume")
        .output(
            "out",
            PortType::Fixed(StreamType::Label),
            "the label with the small components of `class` relabelled",
        )
    }

    fn check_params(&self, p: &DropParams) -> Vec<(String, String)> {
        same_class_error(p.class, p.replace_with)
            .into_iter()
            .collect()
    }

    fn create(&self, p: DropParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(DropSmallComponentsNode { p }))
    }
}

struct DropSmallComponentsNode {
    p: DropParams,
}

/// Relabels, in place, the components of `class` in `label` with fewer than `min_voxels` voxels
/// to `replace_with`; returns how many components were dropped and how many kept.
pub fn drop_small(
    label: &mut Array3<u8>,
    class: u8,
    min_voxels: f64,
    replace_with: u8,
    connectivity: Connectivity,
) -> (usize, usize) {
    relabel_components(label, class, replace_with, connectivity, |_, ids, n| {
        let sizes = component_sizes(ids.view(), n);
        sizes.iter().map(|&s| (s as f64) < min_voxels).collect()
    })
}

impl Node for DropSmallComponentsNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let v = ctx.gather("in")?;
        relabel_and_emit(ctx, v, "small", |label, header| {
            let [dk, dj, di] = header.spacing;
            drop_small(
                label,
                self.p.class,
                self.p.min_volume_mm3 / (dk * dj * di),
                self.p.replace_with,
                self.p.connectivity.into(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_islands_go_large_ones_stay() {
        let mut l = Array3::<u8>::from_elem((4, 6, 6), 1);
        // A 2x2x2 island (8 voxels) and a single voxel touching it only by a corner.
        for k in 0..2 {
            for j in 0..2 {
                for i in 0..2 {
                    l[[k, j, i]] = 2;
                }
            }
        }
        l[[2, 2, 2]] = 2;
        l[[3, 5, 5]] = 2;
        let mut faces = l.clone();
        // 26-connected: {8 + corner voxel} = 9 and {1}; min 5 keeps the first only.
        assert_eq!(
            drop_small(&mut l, 2, 5.0, 1, Connectivity::TwentySix),
            (1, 1)
        );
        assert_eq!(l.iter().filter(|&&x| x == 2).count(), 9);
        assert_eq!(l[[3, 5, 5]], 1);
        // 6-connected: the corner voxel is its own component and is dropped too.
        assert_eq!(drop_small(&mut faces, 2, 5.0, 1, Connectivity::Six), (2, 1));
        assert_eq!(faces.iter().filter(|&&x| x == 2).count(), 8);
        assert_eq!(faces[[2, 2, 2]], 1);
    }

    #[test]
    fn other_classes_and_zero_threshold_are_untouched() {
        let mut l = Array3::<u8>::zeros((2, 3, 3));
        l[[0, 0, 0]] = 2;
        l[[1, 2, 2]] = 3;
        let before = l.clone();
        assert_eq!(
            drop_small(&mut l, 2, 0.0, 1, Connectivity::TwentySix),
            (0, 1)
        );
        assert_eq!(l, before);
        drop_small(&mut l, 2, 2.0, 0, Connectivity::TwentySix);
        assert_eq!(l[[0, 0, 0]], 0);
        assert_eq!(l[[1, 2, 2]], 3);
    }
}
