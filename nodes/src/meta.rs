//! Keys of the stream metadata (`Header::meta`) that the built-in nodes write and read; the
//! runtime carries the map without knowing them.

use std::path::Path;
use voxflow_runtime::Header;

/// The file or folder a stream was read from (`read_volume`).
pub const SOURCE: &str = "source";

/// The intensity steps an image stream has been through, as a `;`-separated string (the
/// `voxflow.preprocess` grammar of docs/MODELS.md). A node that changes intensities in a way it
/// cannot describe there must remove it.
pub const PREPROCESS: &str = "preprocess";

/// The imaging modality as the source names it, such as "CT" or "MR" (DICOM Modality).
pub const MODALITY: &str = "modality";

/// The stream's modality; empty when unknown.
pub fn modality(h: &Header) -> &str {
    h.meta
        .get(MODALITY)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
}

/// Records the stream's modality; an empty one removes it.
pub fn set_modality(h: &mut Header, modality: &str) {
    if modality.is_empty() {
        h.meta.remove(MODALITY);
    } else {
        h.meta.insert(MODALITY.into(), modality.into());
    }
}

/// The file or folder the stream was read from, when known.
pub fn source(h: &Header) -> Option<&str> {
    h.meta.get(SOURCE).and_then(|v| v.as_str())
}

/// Records the file or folder the stream was read from.
pub fn set_source(h: &mut Header, path: &Path) {
    h.meta
        .insert(SOURCE.into(), path.display().to_string().into());
}
