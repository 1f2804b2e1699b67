//! features nodes: `survival_features` (PyRadiomics features per region) and `risk`.

mod support;

use support::regions;
pub(crate) use support::regions::{component_extents, extent, BoxSlice, Extent};
pub mod risk;
pub mod survival_features;

use std::sync::Arc;
use voxflow_runtime::NodeKind;

/// The node kinds of this family.
pub fn kinds() -> Vec<Arc<dyn NodeKind>> {
    vec![
        Arc::new(survival_features::SurvivalFeatures),
        Arc::new(risk::Risk),
    ]
}
