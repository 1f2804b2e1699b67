//! Listing a series folder and opening its files; what cannot be read is a bad file.

use super::*;

/// Files that could not be read: an error, or with `skip` a warning and a note in the metadata.
pub(super) struct BadFiles {
    pub(super) skip: bool,
    pub(super) skipped: Vec<PathBuf>,
}

impl BadFiles {
    pub(super) fn report(&mut self, path: &Path, reason: &str) -> Result<(), String> {
        if self.skip {
            tracing::warn!("skipped DICOM file {}: {reason}", path.display());
            self.skipped.push(path.to_path_buf());
            Ok(())
        } else {
            Err(format!(
                "{}: {reason} (read_volume's `skip_bad_files: true` skips such files with a warning)",
                path.display()
            ))
        }
    }
}

/// Names that are never slices: the DICOMDIR index and hidden files (`.DS_Store` and the like).
pub(super) fn ignored_name(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.eq_ignore_ascii_case("DICOMDIR") || name.starts_with('.')
}

/// Extensions of files that are never slices (notes, graphs, reports, pictures, volumes): such
/// files are passed over with a warning naming each.
pub(super) const OTHER_FORMATS: &[&str] = &[
    "txt", "md", "pdf", "html", "htm", "xml", "json", "yaml", "yml", "csv", "log", "nii", "gz",
    "zip", "png", "jpg", "jpeg",
];

pub(super) fn other_format(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| OTHER_FORMATS.contains(&e.as_str()))
}

/// The regular files directly in `dir` (sorted by name), minus ignored names and other formats;
/// subfolders are not read. Anything else that is not a readable regular file is a bad file.
pub(super) fn list_files(dir: &Path, bad: &mut BadFiles) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list DICOM folder {}: {e}", dir.display()))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| format!("cannot list DICOM folder {}: {e}", dir.display()))?;
        paths.push(entry.path());
    }
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        if ignored_name(&path) {
            continue;
        }
        if other_format(&path) {
            tracing::warn!("not read as DICOM: {} (its extension)", path.display());
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.is_file() => files.push(path),
            Ok(_) => bad.report(&path, "not a regular file")?,
            Err(e) => bad.report(&path, &format!("cannot be read: {e}"))?,
        }
    }
    Ok(files)
}

/// Opens every file whole (header and pixel data), so that a truncated file is found here.
pub(super) fn open_files(
    files: Vec<PathBuf>,
    bad: &mut BadFiles,
) -> Result<Vec<(PathBuf, DefaultDicomObject)>, String> {
    let mut objects = Vec::with_capacity(files.len());
    for path in files {
        match open_one(&path) {
            Ok(obj) => objects.push((path, obj)),
            Err(reason) => bad.report(&path, &reason)?,
        }
    }
    Ok(objects)
}

/// Bytes beyond the file's size that one allocation of the parser may take (its own buffers).
pub(super) const PARSE_SLACK: usize = 1 << 20;

pub(super) fn open_one(path: &Path) -> Result<DefaultDicomObject, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot be read: {e}"))?
        .len();
    if len == 0 {
        return Err("empty file (0 bytes)".into());
    }
    // Before the parser, which allocates what a length field claims.
    crate::io::dicom_lengths::check(path)?;
    // No value can be larger than the file.
    let cap = usize::try_from(len)
        .unwrap_or(usize::MAX)
        .saturating_add(PARSE_SLACK);
    let obj = crate::io::alloc_cap::with_cap(cap, || open_file(path)).map_err(|e| {
        if has_dicm_marker(path) {
            let chain = error_chain(&e);
            // The cap refused a value larger than the file: say so, not "out of memory".
            let beyond = if chain.contains("Could not reserve memory") {
                format!(" (the file has only {len} bytes)")
            } else {
                String::new()
            };
            format!("damaged DICOM file (truncated or corrupt): {chain}{beyond}")
        } else {
            "not a DICOM file (no `DICM` marker at byte 128 or 0)".into()
        }
    })?;
    // A file cut between two elements opens without error but ends before its pixels.
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err("no pixel data (a truncated file, or not an image)".into());
    }
    Ok(obj)
}

/// Whether the file starts like a DICOM file: `DICM` after the 128-byte preamble, or at 0.
pub(super) fn has_dicm_marker(path: &Path) -> bool {
    let mut head = Vec::with_capacity(132);
    let read = std::fs::File::open(path).and_then(|f| f.take(132).read_to_end(&mut head));
    read.is_ok() && (head.get(128..132) == Some(b"DICM") || head.get(0..4) == Some(b"DICM"))
}

/// An error and its causes, in the libraries' words, joined by `: `.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

pub(super) type Groups = BTreeMap<String, Vec<(PathBuf, DefaultDicomObject)>>;
