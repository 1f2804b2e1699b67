//! Intensity preprocessing.

pub mod equalize;
pub mod hu_window;
pub mod mr_normalize;
pub mod n4;

use crate::meta::PREPROCESS;
use std::sync::Arc;
use voxflow_runtime::{Header, NodeKind};

/// Records `step` (docs/MODELS.md grammar) in the header's chain of preprocessing steps
/// ([`PREPROCESS`]): appended to the input's chain; without one, the start of a new chain
/// when `starts` (a step that reads the scan's own intensities, such as a HU window), else no
/// chain (what came before is unknown).
pub fn record_step(h: &mut Header, step: &str, starts: bool) {
    let chain = match h.meta.get(PREPROCESS).and_then(|v| v.as_str()) {
        Some(c) => format!("{c};{step}"),
        None if starts => step.to_string(),
        None => {
            h.meta.remove(PREPROCESS);
            return;
        }
    };
    h.meta.insert(PREPROCESS.into(), chain.into());
}

/// The node kinds of this family.
pub fn kinds() -> Vec<Arc<dyn NodeKind>> {
    vec![
        Arc::new(hu_window::HuWindow),
        Arc::new(equalize::Equalize),
        Arc::new(n4::N4),
        Arc::new(mr_normalize::MrNormalize),
    ]
}
