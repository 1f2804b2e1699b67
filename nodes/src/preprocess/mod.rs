//! Intensity preprocessing.

pub mod equalize;
pub mod hu_window;

use std::sync::Arc;
use voxflow_runtime::NodeKind;

/// The node kinds of this family.
pub fn kinds() -> Vec<Arc<dyn NodeKind>> {
    vec![Arc::new(hu_window::HuWindow), Arc::new(equalize::Equalize)]
}
