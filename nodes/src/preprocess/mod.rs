//! Intensity preprocessing.

pub mod equalize;
pub mod hu_window;
pub mod mr_normalize;
pub mod n4;

use std::sync::Arc;
use voxflow_runtime::NodeKind;

/// The node kinds of this family.
pub fn kinds() -> Vec<Arc<dyn NodeKind>> {
    vec![
        Arc::new(hu_window::HuWindow),
        Arc::new(equalize::Equalize),
        Arc::new(n4::N4),
        Arc::new(mr_normalize::MrNormalize),
    ]
}
