//! report nodes: overlay images, the HTML case report, case statistics; shared code in
//! `support/`.

pub mod overlay;
#[allow(clippy::module_inception)]
pub mod report;
pub mod stats;
mod support;

use support::{annotate, page};
pub use support::{draw, viewer};

use std::sync::Arc;
use voxflow_runtime::NodeKind;

/// The node kinds of this family.
pub fn kinds() -> Vec<Arc<dyn NodeKind>> {
    vec![
        Arc::new(overlay::Overlay),
        Arc::new(report::Report),
        Arc::new(stats::Stats),
    ]
}
