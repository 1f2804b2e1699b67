//! report nodes: overlay images, the HTML case report, case statistics, DICOM SEG.

mod annotate;
pub mod dicom_seg;
pub mod draw;
pub mod overlay;
mod page;
#[allow(clippy::module_inception)]
pub mod report;
pub mod stats;
pub mod viewer;

use std::sync::Arc;
use voxflow_runtime::NodeKind;

/// The node kinds of this family.
pub fn kinds() -> Vec<Arc<dyn NodeKind>> {
    vec![
        Arc::new(overlay::Overlay),
        Arc::new(report::Report),
        Arc::new(stats::Stats),
        Arc::new(dicom_seg::WriteDicomSeg),
    ]
}
