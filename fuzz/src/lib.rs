//! Helpers shared by the fuzz targets.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use voxflow_runtime::Registry;

/// As in the voxflow binary: single allocations capped where a parser asks.
#[global_allocator]
static GLOBAL: voxflow_nodes::io::alloc_cap::CappedAlloc =
    voxflow_nodes::io::alloc_cap::CappedAlloc;

/// Keeps every volume small (the reader checks the budget before allocating), so that the
/// fuzzer's memory limit flags any allocation that escapes the check.
pub fn small_budget() {
    static SET: OnceLock<()> = OnceLock::new();
    SET.get_or_init(|| std::env::set_var(voxflow_nodes::io::budget::MAX_VOXELS_VAR, "1000000"));
}

/// `data` gzipped as two members, split in the middle.
pub fn gzip_two_members(data: &[u8]) -> Vec<u8> {
    let (a, b) = data.split_at(data.len() / 2);
    let mut out = Vec::new();
    for part in [a, b] {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(part).expect("gzip into memory");
        out.extend(e.finish().expect("gzip into memory"));
    }
    out
}

/// Separates the files of the `dicom_folder` target's input.
pub const FILE_SEPARATOR: &[u8] = b"\xffFUZZFILE\xff";

/// The input split at each [`FILE_SEPARATOR`] (at most 8 files).
pub fn split_files(data: &[u8]) -> Vec<&[u8]> {
    let mut files = Vec::new();
    let mut rest = data;
    while files.len() < 7 {
        match rest
            .windows(FILE_SEPARATOR.len())
            .position(|w| w == FILE_SEPARATOR)
        {
            Some(i) => {
                files.push(&rest[..i]);
                rest = &rest[i + FILE_SEPARATOR.len()..];
            }
            None => break,
        }
    }
    files.push(rest);
    files
}

/// This process's scratch folder.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("voxflow-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create scratch folder");
        d
    })
}

/// Writes `data` to a file of the scratch folder.
pub fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let p = scratch().join(name);
    std::fs::write(&p, data).expect("write scratch file");
    p
}

/// A folder holding exactly `files` (as `f0`, `f1`, ...).
pub fn series_dir(files: &[&[u8]]) -> PathBuf {
    let d = scratch().join("series");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create series folder");
    for (i, f) in files.iter().enumerate() {
        std::fs::write(d.join(format!("f{i}")), f).expect("write series file");
    }
    d
}

/// The built-in node registry, built once.
pub fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(voxflow_nodes::registry)
}
