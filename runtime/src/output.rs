//! Output files, one way for the runtime and the CLI: written under a temporary name beside the
//! destination, unique across hosts, processes and threads, and renamed only when complete, so
//! a reader (or a later run after a crash) never sees part of a file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A file a node wrote under a temporary name; renamed when the whole graph succeeds.
#[derive(Debug, Clone)]
pub struct PendingFile {
    pub tmp: PathBuf,
    pub dest: PathBuf,
}

/// What a run's nodes have put on disk so far.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub files: Vec<PendingFile>,
    /// Folders created for outputs; removed again (when empty) if the run fails.
    pub dirs: Vec<PathBuf>,
}

impl Pending {
    /// Removes the temporary files and the folders made for them (a failed run).
    pub fn discard(mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(&f.tmp);
        }
        // Deepest first, so that a parent is empty when its turn comes.
        self.dirs
            .sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in &self.dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// This machine's host name ("unknown" if unreadable).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Prefix of every temporary output file: `.voxflow-tmp-HOST-PID-ThreadId(N)-NAME`.
pub const TEMP_PREFIX: &str = ".voxflow-tmp-";

/// The folder an output file goes to (`.` for a bare name) and its file name; an error for a
/// path that names no file (`/`, `..`).
pub fn folder_and_name(dest: &Path) -> Result<(&Path, String), String> {
    let name = dest
        .file_name()
        .ok_or_else(|| format!("{} is not a file path", dest.display()))?;
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((dir, name.to_string_lossy().into_owned()))
}

/// The temporary path in `dir` to write the file `name` through, after removing the stale
/// temporaries of `name` there ([`remove_stale_temps`]). Unique across hosts sharing the folder,
/// processes and threads.
pub fn temp_beside(dir: &Path, name: &str) -> PathBuf {
    remove_stale_temps(dir, name);
    dir.join(format!(
        "{TEMP_PREFIX}{}-{}-{:?}-{name}",
        host_name(),
        std::process::id(),
        std::thread::current().id()
    ))
}

/// Removes the temporary files for `name` in `dir` that a process of this host left behind
/// when it was killed (its pid no longer runs). Temporaries of live processes, of this
/// process and of other hosts sharing the folder are kept.
pub fn remove_stale_temps(dir: &Path, name: &str) {
    let host = host_name();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(owner) = file
            .to_str()
            .and_then(|f| f.strip_prefix(TEMP_PREFIX))
            .and_then(|f| f.strip_suffix(name))
            .and_then(|f| f.strip_suffix('-'))
        else {
            continue;
        };
        // HOST-PID-ThreadId(N), or HOST-PID and PID (older versions).
        let owner = owner
            .strip_suffix(')')
            .and_then(|o| o.rsplit_once("-ThreadId("))
            .map_or(owner, |(o, _)| o);
        let (h, pid) = owner.rsplit_once('-').unwrap_or((&host, owner));
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if h == host
            && pid != std::process::id()
            && !Path::new("/proc").join(pid.to_string()).exists()
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Writes through a temporary file in the same folder, flushed to disk, then renamed: readers
/// (and a later run after a crash) see the old file or the whole new one, never a part.
pub fn write_atomic(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), String> {
    let bytes = bytes.as_ref();
    let (dir, name) = folder_and_name(path)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tmp = temp_beside(dir, &name);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_and_name_of_outputs() {
        let (d, n) = folder_and_name(Path::new("out/a.csv")).unwrap();
        assert_eq!((d, n.as_str()), (Path::new("out"), "a.csv"));
        let (d, n) = folder_and_name(Path::new("a.csv")).unwrap();
        assert_eq!((d, n.as_str()), (Path::new("."), "a.csv"));
        assert!(folder_and_name(Path::new("/")).is_err());
        assert!(folder_and_name(Path::new("out/..")).is_err());
        assert!(write_atomic(Path::new("/"), b"x").is_err());
    }
}
