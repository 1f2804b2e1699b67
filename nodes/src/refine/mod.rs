//! refine nodes.

mod crf_volume;
pub mod dense_crf;
pub mod small_components;

use std::sync::Arc;
use voxflow_runtime::NodeKind;

/// The node kinds of this family.
pub fn kinds() -> Vec<Arc<dyn NodeKind>> {
    vec![
        Arc::new(dense_crf::DenseCrf),
        Arc::new(small_components::DropSmallComponents),
    ]
}
