//! refine nodes.

mod support;

use support::crf_volume;
pub mod dense_crf;
pub mod drop_small_components;
pub mod drop_thin_components;
pub mod drop_unsure_components;

use std::sync::Arc;
use voxflow_runtime::NodeKind;

/// The node kinds of this family.
pub fn kinds() -> Vec<Arc<dyn NodeKind>> {
    vec![
        Arc::new(dense_crf::DenseCrf),
        Arc::new(drop_small_components::DropSmallComponents),
        Arc::new(drop_thin_components::DropThinComponents),
        Arc::new(drop_unsure_components::DropUnsureComponents),
    ]
}
