//! Damaged and unrepresentable DICOM series, made at test time from the real series
//! `$VOXFLOW_DATA/ircadb17_dicom` (nothing derived from it is committed): the folder is
//! mirrored by symbolic links into a temporary folder and one file is replaced by a damaged or
//! re-tagged copy. Each `voxflow run` of `read_volume -> write_volume` ends either in the right
//! volume or in rc 1 with a message naming the file and what is wrong, no panic text, and
//! nothing at the output path.

mod common;
use common::*;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use ndarray::{s, Array3};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use voxflow_nodes::io::nifti_io::read_nifti;
use voxflow_nodes::io::read_volume::read_any;
use voxflow_runtime::stream::VolumeData;

/// The real series as read before any damage: its files in slice order, voxels and affine.
struct Original {
    dir: PathBuf,
    files: Vec<PathBuf>,
    voxels: Array3<f32>,
    affine: [[f64; 4]; 4],
}

fn original() -> Option<&'static Original> {
    static ORIGINAL: OnceLock<Option<Original>> = OnceLock::new();
    ORIGINAL
        .get_or_init(|| {
            let dir = data_file("ircadb17_dicom")?;
            let v = read_any(&dir, None, None).expect("the real series reads");
            let files = v
                .slice_meta
                .iter()
                .map(|m| PathBuf::from(m.as_ref().unwrap()["file"].as_str().unwrap()))
                .collect();
            let VolumeData::Image(voxels) = v.data else {
                panic!("not an image")
            };
            Some(Original {
                dir,
                files,
                voxels,
                affine: v.header.affine,
            })
        })
        .as_ref()
}

/// A temporary mirror of the series: a folder of links to the real files.
struct Mirror {
    root: PathBuf,
    series: PathBuf,
}

impl Mirror {
    fn new(name: &str, orig: &Original) -> Mirror {
        let root = temp_dir(&format!("hostile-{name}"));
        let series = root.join("series");
        std::fs::create_dir_all(&series).unwrap();
        for e in std::fs::read_dir(&orig.dir).unwrap() {
            let p = e.unwrap().path();
            std::os::unix::fs::symlink(&p, series.join(p.file_name().unwrap())).unwrap();
        }
        Mirror { root, series }
    }

    /// The mirror's path of the original `file`.
    fn at(&self, file: &Path) -> PathBuf {
        self.series.join(file.file_name().unwrap())
    }

    /// Replaces the link to `file` by a real file holding `bytes`.
    fn write(&self, file: &Path, bytes: &[u8]) -> PathBuf {
        let p = self.at(file);
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Replaces the link to `file` by a copy whose tags `edit` changed.
    fn retag(&self, file: &Path, edit: impl Fn(&mut DefaultDicomObject)) -> PathBuf {
        let mut obj = dicom_object::open_file(file).unwrap();
        edit(&mut obj);
        let p = self.at(file);
        std::fs::remove_file(&p).unwrap();
        obj.write_to_file(&p).unwrap();
        p
    }

    /// Runs `read_volume -> write_volume`; returns the run and the output path.
    fn run(&self, skip_bad_files: bool) -> (Output, PathBuf) {
        let out = self.root.join("out.nii");
        let _ = std::fs::remove_file(&out);
        let g = write_graph(
            &self.root,
            "g.yaml",
            &format!(
                "graph: t\nnodes:\n  ct: {{ kind: read_volume, path: {}, skip_bad_files: {skip_bad_files} }}\n  out: {{ kind: write_volume, in: ct, path: {} }}\n",
                self.series.display(),
                out.display()
            ),
        );
        (voxflow(&["run", g.to_str().unwrap()]), out)
    }

    /// Asserts rc 1, a message holding every `needle`, no panic text and no output.
    fn refused(&self, skip_bad_files: bool, needles: &[&str]) {
        let (o, out) = self.run(skip_bad_files);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        for n in needles {
            assert!(err.contains(n), "`{n}` not in:\n{err}");
        }
        assert!(err.contains("node `ct` (read_volume)"), "{err}");
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{err}"
        );
        assert!(!out.exists(), "{} was written", out.display());
        let leftovers: Vec<_> = std::fs::read_dir(&self.root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("voxflow-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// Runs with `skip_bad_files`, asserts success, and returns stderr and the volume written.
    fn read(&self, skip_bad_files: bool) -> (String, Array3<f32>, [[f64; 4]; 4]) {
        let (o, out) = self.run(skip_bad_files);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        let n = read_nifti(&out, None).unwrap();
        let VolumeData::Image(v) = n.data else {
            panic!("not an image")
        };
        (err, v, n.header.affine)
    }
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn set(obj: &mut DefaultDicomObject, tag: dicom_core::Tag, vr: VR, v: PrimitiveValue) {
    obj.put(DataElement::new(tag, vr, v));
}

/// The first, middle and last file in slice order.
fn ends_and_middle(orig: &Original) -> [&Path; 3] {
    let n = orig.files.len();
    [&orig.files[0], &orig.files[n / 2], &orig.files[n - 1]]
}

#[test]
fn truncated_file_anywhere_is_named() {
    let Some(orig) = original() else { return };
    for (i, file) in ends_and_middle(orig).into_iter().enumerate() {
        let m = Mirror::new(&format!("trunc{i}"), orig);
        let bytes = std::fs::read(file).unwrap();
        let p = m.write(file, &bytes[..bytes.len() / 2]);
        m.refused(
            false,
            &[
                &p.display().to_string(),
                "damaged DICOM file (truncated or corrupt)",
                "skip_bad_files",
            ],
        );
    }
}

#[test]
fn empty_and_garbage_files_are_named() {
    let Some(orig) = original() else { return };
    let [first, middle, last] = ends_and_middle(orig);
    let m = Mirror::new("empty", orig);
    let p = m.write(middle, b"");
    m.refused(false, &[&p.display().to_string(), "empty file"]);
    // Deterministic noise of a plausible slice size.
    let mut x: u32 = 12345;
    let noise: Vec<u8> = (0..600_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    for (i, file) in [first, last].into_iter().enumerate() {
        let m = Mirror::new(&format!("garbage{i}"), orig);
        let p = m.write(file, &noise);
        m.refused(false, &[&p.display().to_string(), "not a DICOM file"]);
    }
}

#[test]
fn stray_files_are_named() {
    let Some(orig) = original() else { return };
    let m = Mirror::new("stray", orig);
    // Ignored: the DICOMDIR index, hidden files, subfolders; other formats with a warning.
    std::fs::write(m.series.join("DICOMDIR"), b"not read").unwrap();
    std::fs::write(m.series.join(".DS_Store"), b"not read").unwrap();
    std::fs::create_dir(m.series.join("sub")).unwrap();
    std::fs::write(m.series.join("sub/image_x"), b"not read").unwrap();
    let readme = m.series.join("README.txt");
    std::fs::write(&readme, b"exported by a PACS\n").unwrap();
    let (err, v, affine) = m.read(false);
    assert!(v == orig.voxels, "the series read differently");
    assert_eq!(
        affine.map(|r| r.map(|x| x as f32)),
        orig.affine.map(|r| r.map(|x| x as f32))
    );
    assert!(
        err.contains(&format!("not read as DICOM: {}", readme.display())),
        "{err}"
    );
    // A file with no such extension must be a slice.
    let notes = m.series.join("notes");
    std::fs::write(&notes, b"exported by a PACS\n").unwrap();
    m.refused(false, &[&notes.display().to_string(), "not a DICOM file"]);
    // Skipped with a warning, the series is read whole.
    let (err, v, _) = m.read(true);
    assert!(
        err.contains("skipped DICOM file") && err.contains(&notes.display().to_string()),
        "{err}"
    );
    assert!(v == orig.voxels);
}

#[test]
fn skip_bad_files_reads_the_rest_and_names_each_skipped_file() {
    let Some(orig) = original() else { return };
    let [first, middle, last] = ends_and_middle(orig);
    let n = orig.files.len();
    let bytes = std::fs::read(first).unwrap();
    // First slice truncated: the other n - 1 are read, the origin moves up one slice.
    let m = Mirror::new("skip-first", orig);
    let p = m.write(first, &bytes[..bytes.len() / 3]);
    let (err, v, affine) = m.read(true);
    assert!(
        err.contains("skipped DICOM file") && err.contains(&p.display().to_string()),
        "{err}"
    );
    assert!(v == orig.voxels.slice(s![1.., .., ..]), "slices 1.. differ");
    for r in 0..3 {
        let moved = orig.affine[r][3] + orig.affine[r][2];
        assert!((affine[r][3] - moved).abs() < 1e-3, "{affine:?}");
    }
    // Last slice garbage, and an empty extra file: n - 1 slices from the first, both named.
    let m = Mirror::new("skip-last", orig);
    let p = m.write(last, b"\x00\x01 not a DICOM file");
    let extra = m.series.join("zzz_empty");
    std::fs::write(&extra, b"").unwrap();
    let (err, v, affine) = m.read(true);
    assert!(err.contains(&p.display().to_string()), "{err}");
    assert!(err.contains(&extra.display().to_string()), "{err}");
    assert_eq!(v.dim().0, n - 1);
    assert!(v == orig.voxels.slice(s![..n - 1, .., ..]));
    assert_eq!(
        affine.map(|r| r.map(|x| x as f32)),
        orig.affine.map(|r| r.map(|x| x as f32))
    );
    // A middle slice skipped leaves a gap: refused, naming the files on both sides.
    let k = orig.files.iter().position(|f| f == middle).unwrap();
    let m = Mirror::new("skip-middle", orig);
    let p = m.write(middle, &bytes[..1000]);
    m.refused(
        true,
        &[
            &name(&p),
            "slice spacing is not uniform",
            &m.at(&orig.files[k - 1]).display().to_string(),
            &m.at(&orig.files[k + 1]).display().to_string(),
        ],
    );
}

#[test]
fn missing_and_duplicate_slices_are_named() {
    let Some(orig) = original() else { return };
    let k = orig.files.len() / 2;
    let m = Mirror::new("gap", orig);
    std::fs::remove_file(m.at(&orig.files[k])).unwrap();
    m.refused(
        false,
        &[
            "slice spacing is not uniform",
            &m.at(&orig.files[k - 1]).display().to_string(),
            &m.at(&orig.files[k + 1]).display().to_string(),
        ],
    );
    let m = Mirror::new("dup", orig);
    let copy = m.series.join("zz_copy");
    std::fs::copy(&orig.files[k], &copy).unwrap();
    m.refused(
        false,
        &[
            "at the same position",
            &copy.display().to_string(),
            &m.at(&orig.files[k]).display().to_string(),
        ],
    );
}

/// Slices that decode but cannot be represented: refused by name, with or without skipping.
#[test]
fn unrepresentable_slices_are_refused_by_name() {
    let Some(orig) = original() else { return };
    let file = &orig.files[orig.files.len() / 3];
    type Edit = fn(&mut DefaultDicomObject);
    let cases: [(&str, Edit, &str); 9] = [
        (
            "rgb",
            |o| {
                set(
                    o,
                    tags::SAMPLES_PER_PIXEL,
                    VR::US,
                    PrimitiveValue::from(3u16),
                );
                set(o, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB".into());
            },
            "3 samples per pixel",
        ),
        (
            "palette",
            |o| {
                set(
                    o,
                    tags::PHOTOMETRIC_INTERPRETATION,
                    VR::CS,
                    "PALETTE COLOR".into(),
                )
            },
            "is not grey-scale",
        ),
        (
            "frames",
            |o| set(o, tags::NUMBER_OF_FRAMES, VR::IS, "2".into()),
            "NumberOfFrames is 2",
        ),
        (
            "spacing0",
            |o| set(o, tags::PIXEL_SPACING, VR::DS, "0\\0".into()),
            "PixelSpacing [0.0, 0.0] is not two positive finite values",
        ),
        (
            "spacingneg",
            |o| set(o, tags::PIXEL_SPACING, VR::DS, "-0.743\\0.743".into()),
            "is not two positive finite values",
        ),
        (
            "spacingnan",
            |o| set(o, tags::PIXEL_SPACING, VR::DS, "NaN\\0.743".into()),
            "is not two positive finite values",
        ),
        (
            "rows",
            |o| set(o, tags::ROWS, VR::US, PrimitiveValue::from(256u16)),
            "Rows x Columns 256x512, but",
        ),
        (
            "bomb",
            |o| {
                set(o, tags::ROWS, VR::US, PrimitiveValue::from(65535u16));
                set(o, tags::COLUMNS, VR::US, PrimitiveValue::from(65535u16));
            },
            "Rows x Columns 65535x65535, but",
        ),
        (
            "slope",
            |o| set(o, tags::RESCALE_SLOPE, VR::DS, "NaN".into()),
            "RescaleSlope",
        ),
    ];
    for (label, edit, needle) in cases {
        let m = Mirror::new(label, orig);
        let p = m.retag(file, edit);
        for skip in [false, true] {
            m.refused(skip, &[&p.display().to_string(), needle]);
        }
    }
}

/// One file claiming 65535 x 65535 pixels: refused by the voxel budget before any allocation.
#[test]
fn dimension_bomb_is_refused_before_allocation() {
    let Some(orig) = original() else { return };
    let m = Mirror::new("bomb-alone", orig);
    for f in &orig.files[1..] {
        std::fs::remove_file(m.at(f)).unwrap();
    }
    m.retag(&orig.files[0], |o| {
        set(o, tags::ROWS, VR::US, PrimitiveValue::from(65535u16));
        set(o, tags::COLUMNS, VR::US, PrimitiveValue::from(65535u16));
    });
    m.refused(
        false,
        &[
            "65535 x 65535 x 1 = 4294836225 voxels",
            "more than the limit",
        ],
    );
}

/// MONOCHROME1 is a display convention: the modality values are read as they are.
#[test]
fn monochrome1_slice_keeps_its_modality_values() {
    let Some(orig) = original() else { return };
    let m = Mirror::new("mono1", orig);
    let k = 7;
    m.retag(&orig.files[k], |o| {
        set(
            o,
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME1".into(),
        )
    });
    let (_, v, _) = m.read(false);
    assert!(v == orig.voxels);
}

/// Runs `voxflow args` with its address space capped at 1 GB, so that an attempt to allocate
/// what a corrupt length field claims (GBs) fails the run.
fn voxflow_capped(args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_voxflow"));
    cmd.args(args);
    // SAFETY: setrlimit is async-signal-safe and touches no state of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let cap = libc::rlimit {
                rlim_cur: 1_000_000_000,
                rlim_max: 1_000_000_000,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &cap) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd.output().expect("run voxflow")
}

/// The files of a committed `dicom_folder` fuzz input: its bytes split at the fuzz target's
/// separator (`fuzz/src/lib.rs`), at most 8 files.
fn fuzz_folder_files(bytes: &[u8]) -> Vec<Vec<u8>> {
    const SEPARATOR: &[u8] = b"\xffFUZZFILE\xff";
    let mut files = Vec::new();
    let mut rest = bytes;
    while files.len() < 7 {
        match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(i) => {
                files.push(rest[..i].to_vec());
                rest = &rest[i + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    files.push(rest.to_vec());
    files
}

/// The files of a `dicom_folder` fuzz input, named `f0`, `f1`, ...
fn fuzz_folder(name: &str) -> Vec<(String, Vec<u8>)> {
    fuzz_folder_files(&fuzz_regression(name))
        .into_iter()
        .enumerate()
        .map(|(i, f)| (format!("f{i}"), f))
        .collect()
}

fn fuzz_regression(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions/dicom")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Reads `files` as a DICOM folder under the 1 GB cap: rc 1, a message naming `bad` (a file
/// name) and its corrupt `element`, no panic text and no output.
fn refused_capped(label: &str, files: &[(String, Vec<u8>)], bad: &str, element: &str) {
    refused_by_reader(
        label,
        files,
        bad,
        &["damaged DICOM file (truncated or corrupt)", element],
    );
}

/// Reads `files` as a DICOM folder under the 1 GB cap: rc 1, a message naming `bad` (a file
/// name), the reader node and each of `wants`, no panic text and no output.
fn refused_by_reader(label: &str, files: &[(String, Vec<u8>)], bad: &str, wants: &[&str]) {
    let root = temp_dir(label);
    let series = root.join("series");
    std::fs::create_dir_all(&series).unwrap();
    for (name, bytes) in files {
        std::fs::write(series.join(name), bytes).unwrap();
    }
    let out = root.join("out.nii");
    let g = write_graph(
        &root,
        "g.yaml",
        &format!(
            "graph: t\nnodes:\n  ct: {{ kind: read_volume, path: {} }}\n  out: {{ kind: write_volume, in: ct, path: {} }}\n",
            series.display(),
            out.display()
        ),
    );
    let o = voxflow_capped(&["run", g.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let bad = series.join(bad).display().to_string();
    for n in [bad.as_str(), "node `ct` (read_volume)"]
        .iter()
        .chain(wants)
    {
        assert!(err.contains(n), "`{n}` not in:\n{err}");
    }
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(!out.exists(), "{} was written", out.display());
}

/// Fuzz input: a 523-byte file whose (0010,0010) claims 3.6 GB (the parser allocated it).
#[test]
fn fuzz_huge_element_length_is_refused_before_allocation() {
    let bytes = fuzz_regression("oom_huge_pixel_data.dcm");
    refused_capped(
        "fuzz-oom",
        &[("oom_huge_pixel_data.dcm".into(), bytes)],
        "oom_huge_pixel_data.dcm",
        "element (0010,0010) at byte 466 claims 3640703488 bytes",
    );
}

/// Fuzz input (`dicom_file`, 670 bytes): a changed tag inside the file meta group stopped the
/// length walk there, so the dataset went unchecked and its (3030,3334) claim of 875 MB was
/// allocated (0.89 GB peak). The walk now follows the meta group length like the parser.
#[test]
fn fuzz_changed_meta_tag_still_has_its_lengths_checked() {
    let bytes = fuzz_regression("oom_meta_tag_changed.dcm");
    refused_capped(
        "fuzz-oom-meta",
        &[("oom_meta_tag_changed.dcm".into(), bytes)],
        "oom_meta_tag_changed.dcm",
        "element (3030,3334) at byte 612 claims 875444270 bytes",
    );
}

/// Fuzz input (`dicom_file`, 739 bytes): an element after the pixel data claims 1.7 GB; the
/// length walk stopped at the pixel data, the parser went on and allocated it (1.69 GB peak).
#[test]
fn fuzz_element_after_pixel_data_has_its_length_checked() {
    let bytes = fuzz_regression("oom_after_pixel_data.dcm");
    refused_capped(
        "fuzz-oom-after",
        &[("oom_after_pixel_data.dcm".into(), bytes)],
        "oom_after_pixel_data.dcm",
        "element (0702,2603) at byte 728 claims 1677935875 bytes",
    );
}

/// Fuzz input for the `dicom_folder` target (took over 10 s): its first file's (007D,009C)
/// claims 18 MB in a 524-byte file.
#[test]
fn fuzz_slow_folder_is_refused() {
    let files = fuzz_folder("slow_folder_split_at_separator.bin");
    assert_eq!(files.len(), 2);
    refused_capped(
        "fuzz-slow",
        &files,
        "f0",
        "element (007D,009C) at byte 484 claims 18350329 bytes",
    );
}

/// Fuzz input (`dicom_folder`): BitsStored 32784 with BitsAllocated 16 panicked in the pixel
/// decoder (`dicom-pixeldata` lut.rs: `bits_stored != 0 && bits_stored <= 32`).
#[test]
fn fuzz_bits_stored_beyond_bits_allocated_is_refused() {
    refused_by_reader(
        "fuzz-bits",
        &fuzz_folder("panic_bits_stored.bin"),
        "f0",
        &["f0: BitsStored 32784 does not fit BitsAllocated 16"],
    );
}

/// Fuzz input (`dicom_folder`, one 890-byte file): Pixel Data of VR OV with 60 bytes. The
/// parser reads 7 eight-byte values and goes on 4 bytes early, out of step with the file, and
/// then allocated the 809 MB an element there claims (0.82 GB peak). Lengths that are not whole
/// values are refused.
#[test]
fn fuzz_partial_binary_value_is_refused() {
    let files = fuzz_folder("oom_partial_value.bin");
    refused_capped(
        "fuzz-partial",
        &files,
        "f0",
        "element (7FE0,0010) at byte 780 has 60 bytes, not a whole number of OV values (8 bytes each)",
    );
}

/// Fuzz input (`dicom_folder`, one 559-byte file): the transfer syntax UID ends in a newline,
/// which the parser trims and the length walk did not, so the walk skipped the dataset and the
/// parser, out of step after a partial UL value, allocated the 4.1 GB an element claims (4.14 GB
/// peak, 21 s).
#[test]
fn fuzz_uid_with_trailing_newline_still_has_its_lengths_checked() {
    let files = fuzz_folder("oom_uid_newline.bin");
    refused_capped(
        "fuzz-uid-newline",
        &files,
        "f0",
        "element (0000,0000) at byte 368 has 91 bytes, not a whole number of UL values (4 bytes each)",
    );
}

/// Fuzz inputs whose oversized length the walk did not see the parser's way (1.1 kB and 711
/// bytes; 0.83 and 1.95 GB peak before). The parser's allocations are capped at the file's size
/// (`io::alloc_cap`), so its reservation fails and the first file is refused; the second has a
/// long NUL-padded transfer syntax UID, which the walk now reads, and is refused by the walk.
#[test]
fn fuzz_claims_only_the_parser_sees_are_capped() {
    let one = fuzz_regression("oom_parser_only_1.dcm");
    refused_capped(
        "fuzz-cap-1",
        &[("oom_parser_only_1.dcm".into(), one)],
        "oom_parser_only_1.dcm",
        "Could not read 822090313 value bytes for element tagged (322E,0820): Could not reserve memory for data value (822090313 bytes) (the file has only 1122 bytes)",
    );
    let files = fuzz_folder("oom_parser_only_2.bin");
    refused_capped(
        "fuzz-cap-2",
        &files,
        "f0",
        "element (7453,6475) at byte 364 claims 1936607609 bytes, but the file has 339 bytes left",
    );
}

/// Fuzz input (`dicom_folder`, one 1.8 kB file): an 84-byte transfer syntax UID (NUL-padded)
/// was longer than the length walk read, so it skipped the dataset; a string element there claims
/// 408 MB (0.42 GB peak before; under the allocation cap the parser's string buffer aborted).
#[test]
fn fuzz_long_padded_uid_still_has_its_lengths_checked() {
    let files = fuzz_folder("abort_long_uid.bin");
    refused_capped(
        "fuzz-long-uid",
        &files,
        "f0",
        "element (0020,0037) at byte 1721 claims 408114756 bytes, but the file has 37 bytes left",
    );
}

/// The 3.6 GB claim among the real slices, under the 1 GB cap: refused naming it, or with
/// `skip_bad_files` skipped with a warning naming it and the series read unchanged.
#[test]
fn fuzz_huge_element_length_among_real_slices() {
    let Some(orig) = original() else { return };
    let m = Mirror::new("fuzz-oom-among", orig);
    let p = m.series.join("oom_huge_pixel_data.dcm");
    std::fs::write(&p, fuzz_regression("oom_huge_pixel_data.dcm")).unwrap();
    let out = m.root.join("out.nii");
    for skip in [false, true] {
        let _ = std::fs::remove_file(&out);
        let g = write_graph(
            &m.root,
            "g.yaml",
            &format!(
                "graph: t\nnodes:\n  ct: {{ kind: read_volume, path: {}, skip_bad_files: {skip} }}\n  out: {{ kind: write_volume, in: ct, path: {} }}\n",
                m.series.display(),
                out.display()
            ),
        );
        let o = voxflow_capped(&["run", g.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&p.display().to_string()), "{err}");
        assert!(err.contains("element (0010,0010)"), "{err}");
        if skip {
            assert!(o.status.success(), "{err}");
            let VolumeData::Image(v) = read_nifti(&out, None).unwrap().data else {
                panic!("not an image")
            };
            assert!(v == orig.voxels, "the series read differently");
        } else {
            assert_eq!(o.status.code(), Some(1), "{err}");
            assert!(!out.exists());
        }
    }
}
