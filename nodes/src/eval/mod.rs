//! eval nodes.

pub mod metrics;
mod support;

use support::scoring;

use std::sync::Arc;
use voxflow_runtime::NodeKind;

/// The node kinds of this family.
pub fn kinds() -> Vec<Arc<dyn NodeKind>> {
    vec![Arc::new(metrics::Metrics)]
}
