//! A case's `status.json`: its state, timings and the versions it was computed from (graph,
//! models, inputs), written atomically; and the per-case lock.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use voxflow_runtime::output::TEMP_PREFIX;
pub use voxflow_runtime::output::{host_name as host, write_atomic};

pub const STATUS_FILE: &str = "status.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Done,
    Failed,
}

/// The SHA-256 of a file or folder. `stat` (sizes and modification times) lets a later run
/// reuse the hash without reading the content again when nothing was touched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileDigest {
    pub path: PathBuf,
    /// Hex SHA-256 of the content (a folder: of its files' relative names and hashes);
    /// `missing` when the path does not exist.
    pub sha256: String,
    pub stat: String,
}

/// The hash of a manifest value: a file's or folder's content, else the value itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputDigest {
    pub column: String,
    pub value: String,
    pub file: Option<FileDigest>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphVersion {
    pub file: PathBuf,
    /// Of the graph file; for a graph that includes others, of all the files' hashes.
    pub sha256: String,
    /// `--set` values given to every case.
    pub set: Vec<String>,
}

/// What a case's result depends on; a done case is rerun when any of it changes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fingerprint {
    pub graph: GraphVersion,
    /// Files the case's checked graph reads that are not its manifest values (the models).
    pub models: Vec<FileDigest>,
    pub inputs: Vec<InputDigest>,
    /// SHA-256 over the input columns, values and content hashes.
    pub input_checksum: String,
    pub output: PathBuf,
    /// `--class` rules when the case is scored against a truth column.
    pub classes: Vec<String>,
}

impl Fingerprint {
    /// Same versions of everything (the `stat` fields may differ).
    pub fn same(&self, o: &Fingerprint) -> bool {
        let files = |a: &[FileDigest], b: &[FileDigest]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| x.path == y.path && x.sha256 == y.sha256)
        };
        self.graph == o.graph
            && files(&self.models, &o.models)
            && self.input_checksum == o.input_checksum
            && self.output == o.output
            && self.classes == o.classes
    }
    /// The first thing that differs, for messages.
    pub fn change(&self, o: &Fingerprint) -> &'static str {
        if self.graph != o.graph {
            "graph changed"
        } else if self.input_checksum != o.input_checksum {
            "input changed"
        } else if self.output != o.output {
            "output path changed"
        } else if self.classes != o.classes {
            "classes changed"
        } else {
            "model changed"
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Timings {
    pub started_unix: f64,
    /// The whole case: child process and scoring.
    pub total_s: f64,
    /// The graph run as the child's report measured it.
    pub graph_s: Option<f64>,
    pub score_s: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub id: String,
    pub state: State,
    pub error: Option<String>,
    pub manifest_line: usize,
    pub timings: Timings,
    /// Peak resident memory of the case's process.
    pub peak_rss_bytes: Option<u64>,
    pub threads: usize,
    pub host: String,
    pub shard: Option<String>,
    pub slurm_job: Option<String>,
    pub voxflow_version: String,
    #[serde(flatten)]
    pub fingerprint: Fingerprint,
    /// Per class, as `voxflow eval` writes them (`null` without truth).
    pub metrics: Option<Value>,
}

impl Status {
    pub fn read(dir: &Path) -> Option<Status> {
        let text = std::fs::read_to_string(dir.join(STATUS_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
    pub fn write(&self, dir: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())? + "\n";
        write_atomic(&dir.join(STATUS_FILE), text.as_bytes())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_bytes(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

fn sha256_file(path: &Path) -> Result<String, String> {
    let mut f = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Files under `path` (itself when it is a file) with their relative names, sorted.
fn listing(path: &Path) -> Result<Vec<(String, PathBuf, std::fs::Metadata)>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![(String::new(), path.to_path_buf(), meta)]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let p = e.map_err(|e| format!("{}: {e}", d.display()))?.path();
            let m = std::fs::metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            if m.is_dir() {
                stack.push(p);
            } else {
                let rel: String = p.strip_prefix(path).unwrap_or(&p).to_string_lossy().into();
                out.push((rel, p, m));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Hashes a file or folder; reuses `known`'s hash when its sizes and times are unchanged.
pub fn digest(path: &Path, known: Option<&FileDigest>) -> Result<FileDigest, String> {
    if !path.exists() {
        return Ok(FileDigest {
            path: path.to_path_buf(),
            sha256: "missing".into(),
            stat: String::new(),
        });
    }
    let files = listing(path)?;
    let mut stat = String::new();
    for (rel, _, m) in &files {
        let t = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        stat.push_str(&format!("{rel}\t{}\t{t}\n", m.len()));
    }
    let stat = sha256_bytes(stat.as_bytes());
    if let Some(k) = known.filter(|k| k.path == path && k.stat == stat) {
        return Ok(k.clone());
    }
    let sha256 = if files.len() == 1 && files[0].0.is_empty() {
        sha256_file(&files[0].1)?
    } else {
        let mut h = Sha256::new();
        for (rel, p, _) in &files {
            h.update(rel.as_bytes());
            h.update([0]);
            h.update(sha256_file(p)?.as_bytes());
            h.update([b'\n']);
        }
        hex(&h.finalize())
    };
    Ok(FileDigest {
        path: path.to_path_buf(),
        sha256,
        stat,
    })
}

/// Digests of the previous status, by path, to skip rehashing unchanged files.
pub fn known_digests(prev: Option<&Status>) -> HashMap<PathBuf, FileDigest> {
    let Some(p) = prev else {
        return HashMap::new();
    };
    let f = &p.fingerprint;
    f.models
        .iter()
        .chain(f.inputs.iter().filter_map(|i| i.file.as_ref()))
        .map(|d| (d.path.clone(), d.clone()))
        .collect()
}

pub fn input_checksum(inputs: &[InputDigest]) -> String {
    let mut s = String::new();
    for i in inputs {
        let content = i.file.as_ref().map_or("-", |f| f.sha256.as_str());
        s.push_str(&format!("{}\0{}\0{content}\n", i.column, i.value));
    }
    sha256_bytes(s.as_bytes())
}

/// An exclusive lock on a case folder, held while the case runs; the system drops it when the
/// process ends, however it ends.
pub struct CaseLock {
    _file: File,
}

impl CaseLock {
    /// `None` when another process holds the case.
    pub fn try_lock(dir: &Path) -> Result<Option<CaseLock>, String> {
        let path = dir.join(".lock");
        let f =
            File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(CaseLock { _file: f })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(format!("cannot lock {}: {e}", path.display()))
            }
        }
    }
}

/// Removes temporary files a killed run left in a case folder and its subfolders
/// (folder outputs such as overlay PNGs write their temporaries beside each file).
pub fn remove_stale_temps(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir {
                remove_stale_temps(&e.path());
            } else if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temps_are_removed_in_subfolders_too() {
        let d = std::env::temp_dir().join(format!("voxflow-stale-{}", std::process::id()));
        std::fs::create_dir_all(d.join("overlays")).unwrap();
        for f in [
            ".voxflow-tmp-1-a.nii.gz",
            "keep.nii.gz",
            "overlays/.voxflow-tmp-1-slice_003.png",
            "overlays/slice_002.png",
        ] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        remove_stale_temps(&d);
        assert!(!d.join(".voxflow-tmp-1-a.nii.gz").exists());
        assert!(!d.join("overlays/.voxflow-tmp-1-slice_003.png").exists());
        assert!(d.join("keep.nii.gz").exists());
        assert!(d.join("overlays/slice_002.png").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn digest_reuses_unchanged_and_sees_changes() {
        let d = std::env::temp_dir().join(format!("voxflow-digest-{}", std::process::id()));
        std::fs::create_dir_all(d.join("series")).unwrap();
        let f = d.join("a.bin");
        std::fs::write(&f, b"abc").unwrap();
        let a = digest(&f, None).unwrap();
        assert_eq!(
            a.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // A forged known hash is reused only while size and time match.
        let forged = FileDigest {
            sha256: "x".into(),
            ..a.clone()
        };
        assert_eq!(digest(&f, Some(&forged)).unwrap().sha256, "x");
        std::fs::write(&f, b"abcd").unwrap();
        assert_ne!(digest(&f, Some(&forged)).unwrap().sha256, "x");

        std::fs::write(d.join("series/1.dcm"), b"one").unwrap();
        let s1 = digest(&d.join("series"), None).unwrap();
        std::fs::write(d.join("series/2.dcm"), b"two").unwrap();
        let s2 = digest(&d.join("series"), None).unwrap();
        assert_ne!(s1.sha256, s2.sha256);
        assert_eq!(digest(&d.join("nothing"), None).unwrap().sha256, "missing");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
