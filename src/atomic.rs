//! Writing a file so that readers never see a part of it.

use std::fs::File;
use std::io::Write;
use std::path::Path;

pub use voxflow_runtime::node::host_name as host;
use voxflow_runtime::node::{remove_stale_temps, TEMP_PREFIX};

/// Writes through a temporary file in the same folder, flushed to disk, then renamed: readers
/// (and a later run after a crash) see the old file or the whole new one, never a part.
pub fn write_atomic(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), String> {
    let bytes = bytes.as_ref();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    remove_stale_temps(dir, &name);
    // Unique across hosts sharing the folder, processes and threads.
    let tmp = dir.join(format!(
        "{TEMP_PREFIX}{}-{}-{:?}-{name}",
        host(),
        std::process::id(),
        std::thread::current().id()
    ));
    let written = File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
