//! Hostile and unusual NIfTI files, made here from a base volume (a synthetic int16 volume, and
//! the real `ircadb01_small_ct.nii.gz` of `$VOXFLOW_DATA`), each run through
//! `read_volume -> write_volume`. Every case ends in either the same output as the unmodified
//! file, or exit code 1 with a message naming the file, no panic text and nothing written.

mod common;

use common::*;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use std::io::{Read, Write};
use std::path::Path;
use voxflow_runtime::StreamType;

const COPY_GRAPH: &str = "\
graph: copy
about: read a volume and write it back
params:
  input: { about: input volume }
  output: { about: output file }
  as: { default: auto, about: stream type }
nodes:
  read: { kind: read_volume, path: $input, as: $as }
  write: { kind: write_volume, in: read, path: $output }
";

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(b).read_to_end(&mut out).unwrap();
    out
}

/// `b` gzipped as `members` gzip members of about equal size.
fn gzip(b: &[u8], members: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in b.chunks(b.len().div_ceil(members)) {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(part).unwrap();
        out.extend(e.finish().unwrap());
    }
    out
}

fn set_i16(b: &mut [u8], at: usize, v: i16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn set_f32(b: &mut [u8], at: usize, v: f32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn get_i16(b: &[u8], at: usize) -> i16 {
    i16::from_le_bytes([b[at], b[at + 1]])
}
fn get_f32(b: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A little-endian single-file NIfTI-1 int16 volume: 7 x 6 x 5 voxels, oblique sform and the
/// matching qform.
fn synthetic_int16() -> Vec<u8> {
    let (nx, ny, nz) = (7i16, 6i16, 5i16);
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    for (i, d) in [3, nx, ny, nz, 1, 1, 1, 1].into_iter().enumerate() {
        set_i16(&mut h, 40 + 2 * i, d);
    }
    set_i16(&mut h, 70, 4);
    set_i16(&mut h, 72, 16);
    for (i, p) in [1.0f32, 0.8, 0.9, 2.5, 1.0, 1.0, 1.0, 1.0]
        .into_iter()
        .enumerate()
    {
        set_f32(&mut h, 76 + 4 * i, p);
    }
    set_f32(&mut h, 108, 352.0);
    set_f32(&mut h, 112, 1.0);
    h[123] = 2;
    set_i16(&mut h, 252, 1);
    set_i16(&mut h, 254, 1);
    // qform: a rotation of 90 degrees about z (quatern_d = sin 45).
    set_f32(&mut h, 264, std::f32::consts::FRAC_1_SQRT_2);
    for (i, v) in [10.0f32, -20.0, 30.0].into_iter().enumerate() {
        set_f32(&mut h, 268 + 4 * i, v);
    }
    let srow = [
        [0.0f32, -0.9, 0.0, 10.0],
        [0.8, 0.0, 0.0, -20.0],
        [0.0, 0.0, 2.5, 30.0],
    ];
    for (r, row) in srow.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            set_f32(&mut h, 280 + 16 * r + 4 * c, *v);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    for v in 0..(nx as i32 * ny as i32 * nz as i32) {
        h.extend(((v * 37 % 2000) as i16 - 1000).to_le_bytes());
    }
    h
}

/// The same file with extension bytes before the data (vox_offset 416, as nibabel writes them).
fn with_extension(b: &[u8]) -> Vec<u8> {
    let mut out = b[..348].to_vec();
    out.extend([1, 0, 0, 0]);
    out.extend(64i32.to_le_bytes());
    out.extend(6i32.to_le_bytes()); // ecode 6: a comment
    out.extend([b'x'; 56]);
    set_f32(&mut out, 108, 416.0);
    out.extend(&b[data_start(b)..]);
    out
}

fn data_start(b: &[u8]) -> usize {
    get_f32(b, 108) as usize
}

/// The same file as big-endian NIfTI-1 (every multi-byte header field and voxel swapped).
fn big_endian(b: &[u8]) -> Vec<u8> {
    let mut out = b.to_vec();
    let mut swap = |at: usize, width: usize, count: usize| {
        for i in 0..count {
            out[at + i * width..at + (i + 1) * width].reverse();
        }
    };
    for (at, width, count) in [
        (0, 4, 1),
        (32, 4, 1),
        (36, 2, 1),
        (40, 2, 8),
        (56, 4, 3),
        (68, 2, 4),
        (76, 4, 11),
        (120, 2, 1),
        (124, 4, 6),
        (252, 2, 2),
        (256, 4, 18),
    ] {
        swap(at, width, count);
    }
    let bytes = (get_i16(b, 72) / 8) as usize;
    let start = data_start(b);
    for c in out[start..].chunks_mut(bytes) {
        c.reverse();
    }
    out
}

/// The same file as NIfTI-2 (540-byte header, 64-bit fields, vox_offset 544).
fn nifti2(b: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 544];
    let f64_at =
        |h: &mut Vec<u8>, at: usize, v: f64| h[at..at + 8].copy_from_slice(&v.to_le_bytes());
    h[0..4].copy_from_slice(&540i32.to_le_bytes());
    h[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
    h[12..14].copy_from_slice(&get_i16(b, 70).to_le_bytes());
    h[14..16].copy_from_slice(&get_i16(b, 72).to_le_bytes());
    for i in 0..8 {
        let d = get_i16(b, 40 + 2 * i) as i64;
        h[16 + 8 * i..24 + 8 * i].copy_from_slice(&d.to_le_bytes());
        f64_at(&mut h, 104 + 8 * i, get_f32(b, 76 + 4 * i).into());
    }
    h[168..176].copy_from_slice(&544i64.to_le_bytes());
    f64_at(&mut h, 176, get_f32(b, 112).into());
    f64_at(&mut h, 184, get_f32(b, 116).into());
    h[344..348].copy_from_slice(&(get_i16(b, 252) as i32).to_le_bytes());
    h[348..352].copy_from_slice(&(get_i16(b, 254) as i32).to_le_bytes());
    for i in 0..18 {
        f64_at(&mut h, 352 + 8 * i, get_f32(b, 256 + 4 * i).into());
    }
    h[500..504].copy_from_slice(&(b[123] as i32).to_le_bytes());
    h.extend(&b[data_start(b)..]);
    h
}

/// One hostile variant: file bytes, file name, `as`, and what must happen.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    ext: &'static str,
    as_: &'static str,
    expect: Expect,
}

enum Expect {
    /// The same output as the unmodified file.
    Same,
    /// Exit code 1 with these words in the message.
    Refused(&'static [&'static str]),
}

fn cases(nii: &[u8]) -> Vec<Case> {
    use Expect::*;
    let gz = |b: Vec<u8>| gzip(&b, 1);
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = nii.to_vec();
        f(&mut b);
        b
    };
    let case = |name, bytes, ext, expect| Case {
        name,
        bytes,
        ext,
        as_: "auto",
        expect,
    };
    let start = data_start(nii);
    let nbytes = nii.len() - start;
    let mut v = vec![
        case("plain", nii.to_vec(), "nii", Same),
        case("gzip_3_members", gzip(nii, 3), "nii.gz", Same),
        case(
            "extension_offset_416",
            gz(with_extension(nii)),
            "nii.gz",
            Same,
        ),
        case(
            "extension_offset_416_plain",
            with_extension(nii),
            "nii",
            Same,
        ),
        case("big_endian", gz(big_endian(nii)), "nii.gz", Same),
        case("nifti2", gz(nifti2(nii)), "nii.gz", Same),
        case(
            "scl_slope_nan",
            gz(edit(&|b| set_f32(b, 112, f32::NAN))),
            "nii.gz",
            Same,
        ),
        case(
            "scl_slope_zero",
            gz(edit(&|b| set_f32(b, 112, 0.0))),
            "nii.gz",
            Same,
        ),
        case(
            "slope_with_nan_intercept",
            gz(edit(&|b| set_f32(b, 116, f32::NAN))),
            "nii.gz",
            Refused(&["scl_inter"]),
        ),
    ];
    for (name, off) in [
        ("vox_offset_0", 0.0f32),
        ("vox_offset_100", 100.0),
        ("vox_offset_minus_500", -500.0),
        ("vox_offset_nan", f32::NAN),
        ("vox_offset_fraction", 352.5),
    ] {
        v.push(case(
            name,
            gz(edit(&|b| set_f32(b, 108, off))),
            "nii.gz",
            Refused(&["vox_offset"]),
        ));
    }
    // Offsets inside or past the file: the data would run past its end.
    v.push(case(
        "vox_offset_353",
        edit(&|b| set_f32(b, 108, 353.0)),
        "nii",
        Refused(&["truncated"]),
    ));
    v.push(case(
        "vox_offset_353_gz",
        gz(edit(&|b| set_f32(b, 108, 353.0))),
        "nii.gz",
        Refused(&["truncated"]),
    ));
    v.push(case(
        "vox_offset_1e9",
        gz(edit(&|b| set_f32(b, 108, 1e9))),
        "nii.gz",
        Refused(&["before the voxel data"]),
    ));
    let types: [(&str, i16, i16, &'static [&'static str]); 8] = [
        ("complex64", 32, 64, &["complex64"]),
        ("complex128", 1792, 128, &["complex128"]),
        ("rgb24", 128, 24, &["RGB24"]),
        ("rgba32", 2304, 32, &["RGBA32"]),
        ("float128", 1536, 128, &["float128"]),
        ("binary", 1, 1, &["binary"]),
        ("datatype_999", 999, 16, &["not a NIfTI data type"]),
        ("bitpix_mismatch", 4, 32, &["bitpix"]),
    ];
    for (name, dt, bitpix, words) in types {
        v.push(case(
            name,
            gz(edit(&|b| {
                set_i16(b, 70, dt);
                set_i16(b, 72, bitpix);
            })),
            "nii.gz",
            Refused(words),
        ));
    }
    v.extend([
        case(
            "truncated_data",
            gz(nii[..nii.len() - 100].to_vec()),
            "nii.gz",
            Refused(&["truncated"]),
        ),
        case(
            "truncated_data_plain",
            nii[..nii.len() - 100].to_vec(),
            "nii",
            Refused(&["truncated"]),
        ),
        case(
            "truncated_header",
            gz(nii[..200].to_vec()),
            "nii.gz",
            Refused(&["header"]),
        ),
        case(
            "truncated_gzip_stream",
            {
                let z = gz(nii.to_vec());
                z[..z.len() / 2].to_vec()
            },
            "nii.gz",
            Refused(&[]),
        ),
        case(
            "corrupt_gzip_stream",
            {
                let mut z = gz(nii.to_vec());
                let mid = z.len() / 2;
                z[mid..mid + 64].fill(0xa5);
                z
            },
            "nii.gz",
            Refused(&[]),
        ),
        case("empty", vec![], "nii.gz", Refused(&["not a NIfTI file"])),
        case(
            "not_nifti",
            b"this is not a volume\n".repeat(40),
            "nii",
            Refused(&["not a NIfTI file"]),
        ),
        case(
            "hdr_img_pair_magic",
            gz(edit(&|b| b[344..348].copy_from_slice(b"ni1\0"))),
            "nii.gz",
            Refused(&[".hdr/.img"]),
        ),
        case(
            "dim0_zero",
            gz(edit(&|b| set_i16(b, 40, 0))),
            "nii.gz",
            Refused(&["dim[0]"]),
        ),
        case(
            "dim0_nine",
            gz(edit(&|b| set_i16(b, 40, 9))),
            "nii.gz",
            Refused(&["dim[0]"]),
        ),
        case(
            "negative_dim",
            gz(edit(&|b| set_i16(b, 42, -5))),
            "nii.gz",
            Refused(&["dimension 1"]),
        ),
        case(
            "nan_srow",
            gz(edit(&|b| set_f32(b, 280, f32::NAN))),
            "nii.gz",
            Refused(&["non-finite", "sform"]),
        ),
        case(
            "nan_spacing_qform",
            gz(edit(&|b| {
                set_i16(b, 254, 0);
                set_f32(b, 80, f32::NAN);
            })),
            "nii.gz",
            Refused(&["qform"]),
        ),
        case(
            "zero_spacing_qform",
            gz(edit(&|b| {
                set_i16(b, 254, 0);
                set_f32(b, 88, 0.0);
            })),
            "nii.gz",
            Refused(&["voxel sizes"]),
        ),
        case(
            "zero_column_sform",
            gz(edit(&|b| {
                for r in 0..3 {
                    set_f32(b, 280 + 16 * r + 8, 0.0);
                }
            })),
            "nii.gz",
            Refused(&["voxel sizes"]),
        ),
    ]);
    // 4D: the volume twice along t.
    let four_d = {
        let mut b = edit(&|b| {
            set_i16(b, 40, 4);
            set_i16(b, 48, 2);
        });
        b.extend_from_slice(&nii[start..]);
        b
    };
    v.push(case(
        "4d_int16_auto",
        gz(four_d.clone()),
        "nii.gz",
        Refused(&["4D", "class probabilities"]),
    ));
    v.push(Case {
        name: "4d_int16_as_image",
        bytes: gz(four_d.clone()),
        ext: "nii.gz",
        as_: "image",
        expect: Refused(&["3D", "2 volumes"]),
    });
    v.push(Case {
        name: "4d_int16_as_prob",
        bytes: gz(four_d),
        ext: "nii.gz",
        as_: "prob",
        expect: Refused(&["probabilities must lie in 0..1"]),
    });
    // A 5D file with a second volume along dimension 5.
    v.push(case(
        "5d",
        gz(edit(&|b| {
            set_i16(b, 40, 5);
            set_i16(b, 50, 2);
        })),
        "nii.gz",
        Refused(&["dimension 5"]),
    ));
    // Scaling to NaN / infinity is refused, not passed on.
    v.push(case(
        "scaling_to_infinity",
        gz(edit(&|b| set_f32(b, 112, 1e38))),
        "nii.gz",
        Refused(&["finite intensities"]),
    ));
    // CT values read as labels.
    v.push(Case {
        name: "ct_as_label",
        bytes: gz(nii.to_vec()),
        ext: "nii.gz",
        as_: "label",
        expect: Refused(&["label volumes need integer values in 0..255"]),
    });
    // An 8-bit image (every voxel value from the low byte of the int16 data: many distinct
    // values) is not taken for a label map by `as: auto`.
    let uint8_image = edit(&|b| {
        let start = data_start(b);
        let bytes: Vec<u8> = b[start..].chunks(2).map(|c| c[0]).collect();
        b.truncate(start);
        b.extend(bytes);
        set_i16(b, 70, 2);
        set_i16(b, 72, 8);
    });
    let distinct = uint8_image[start..]
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    assert!(distinct > 128, "the uint8 image has only {distinct} values");
    v.push(case(
        "uint8_image_as_auto",
        gz(uint8_image),
        "nii.gz",
        Refused(&["distinct values look like an image", "`as: image`"]),
    ));
    // Bombs: a header claiming 32768 x 32768 x 2 int16 voxels (4 GiB) over the real data.
    let bomb = gz(edit(&|b| {
        set_i16(b, 42, i16::MAX);
        set_i16(b, 44, i16::MAX);
        set_i16(b, 46, 2);
    }));
    v.push(case(
        "bomb_data_ends_early",
        bomb.clone(),
        "nii.gz",
        Refused(&["voxels"]),
    ));
    assert!(nbytes > 0);
    v
}

/// Runs the copy graph on `input`; returns the process output.
fn copy(
    graph: &Path,
    input: &Path,
    output: &Path,
    as_: &str,
    env: &[(&str, &str)],
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_voxflow"))
        .args(["run", "-q"])
        .arg(graph)
        .arg("--set")
        .arg(format!("input={}", input.display()))
        .arg("--set")
        .arg(format!("output={}", output.display()))
        .arg("--set")
        .arg(format!("as={as_}"))
        .env_remove("VOXFLOW_MAX_VOXELS")
        .envs(env.iter().copied())
        .output()
        .expect("run voxflow")
}

/// Asserts a refusal: exit code 1, the file named, the words present, no panic, no output.
fn assert_refused(
    o: &std::process::Output,
    input: &Path,
    out_dir: &Path,
    words: &[&str],
    what: &str,
) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{what}: expected exit code 1; stderr:\n{err}"
    );
    assert!(
        err.contains(&input.display().to_string()),
        "{what}: the message does not name {}:\n{err}",
        input.display()
    );
    for w in words {
        assert!(err.contains(w), "{what}: the message lacks `{w}`:\n{err}");
    }
    for bad in ["panicked", "RUST_BACKTRACE", "Kind(", "Os {"] {
        assert!(!err.contains(bad), "{what}: `{bad}` in the message:\n{err}");
    }
    let left: Vec<_> = std::fs::read_dir(out_dir).unwrap().collect();
    assert!(left.is_empty(), "{what}: the failed run left {left:?}");
}

/// Runs every case on the NIfTI-1 bytes `nii`.
fn run_cases(tag: &str, nii: &[u8]) {
    let d = temp_dir(&format!("hostile-{tag}"));
    let graph = write_graph(&d, "copy.yaml", COPY_GRAPH);
    let (ins, outs) = (d.join("in"), d.join("out"));
    std::fs::create_dir_all(&ins).unwrap();
    let base = ins.join("base.nii.gz");
    std::fs::write(&base, gzip(nii, 1)).unwrap();
    let mut reference: std::collections::HashMap<&str, Vec<u8>> = Default::default();
    let mut failures = Vec::new();
    for c in cases(nii) {
        std::fs::create_dir_all(&outs).unwrap();
        let input = ins.join(format!("{}.{}", c.name, c.ext));
        std::fs::write(&input, &c.bytes).unwrap();
        let out = outs.join("out.nii.gz");
        let o = copy(&graph, &input, &out, c.as_, &[]);
        let what = format!("{tag}/{}", c.name);
        let result = std::panic::catch_unwind(|| match c.expect {
            Expect::Same => {
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(o.status.success(), "{what}: failed:\n{err}");
                let got = std::fs::read(&out).unwrap();
                let want = reference.get(c.as_).cloned().unwrap_or_else(|| {
                    let r = copy(&graph, &base, &d.join("ref.nii.gz"), c.as_, &[]);
                    assert!(r.status.success(), "{what}: the base file does not read");
                    std::fs::read(d.join("ref.nii.gz")).unwrap()
                });
                assert!(
                    got == want,
                    "{what}: the output differs from the unmodified file's"
                );
                want
            }
            Expect::Refused(words) => {
                assert_refused(&o, &input, &outs, words, &what);
                Vec::new()
            }
        });
        match result {
            Ok(r) if !r.is_empty() => {
                reference.insert(c.as_, r);
            }
            Ok(_) => {}
            Err(e) => failures.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| what.clone()),
            ),
        }
        let _ = std::fs::remove_dir_all(&outs);
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n---\n")
    );
}

#[test]
fn hostile_variants_of_a_synthetic_volume() {
    run_cases("synthetic", &synthetic_int16());
}

#[test]
fn hostile_variants_of_a_real_ct() {
    let Some(p) = data_file("ircadb01_small_ct.nii.gz") else {
        return;
    };
    run_cases("ircadb01", &gunzip(&std::fs::read(p).unwrap()));
}

/// A header claiming 4 GiB of int16 voxels is refused before anything is allocated, under the
/// process's own address-space limit and under an explicit budget.
#[test]
fn bomb_is_refused_by_the_budget() {
    let d = temp_dir("hostile-bomb");
    let graph = write_graph(&d, "copy.yaml", COPY_GRAPH);
    let outs = d.join("out");
    std::fs::create_dir_all(&outs).unwrap();
    let mut b = synthetic_int16();
    set_i16(&mut b, 42, i16::MAX);
    set_i16(&mut b, 44, i16::MAX);
    set_i16(&mut b, 46, 2);
    // 4 MiB of zero voxels: a small .nii.gz that inflates far beyond the budget below.
    b.extend(vec![0u8; 4 << 20]);
    let input = d.join("bomb.nii.gz");
    std::fs::write(&input, gzip(&b, 1)).unwrap();
    let out = outs.join("o.nii.gz");

    let o = copy(
        &graph,
        &input,
        &out,
        "auto",
        &[("VOXFLOW_MAX_VOXELS", "100000000")],
    );
    assert_refused(
        &o,
        &input,
        &outs,
        &["VOXFLOW_MAX_VOXELS=100000000", "32767 x 32767 x 2"],
        "max voxels",
    );

    let o = voxflow(&[
        "--max-voxels",
        "1000",
        "run",
        "-q",
        graph.to_str().unwrap(),
        "--set",
        &format!("input={}", input.display()),
        "--set",
        &format!("output={}", out.display()),
    ]);
    assert_refused(
        &o,
        &input,
        &outs,
        &["VOXFLOW_MAX_VOXELS=1000"],
        "--max-voxels",
    );

    // Under `ulimit -v` of 3 GiB, the default budget (half of what the process may still map)
    // refuses the 8 GiB of float32 the volume would take.
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 3145728 && exec '{}' run -q '{}' --set 'input={}' --set 'output={}'",
            env!("CARGO_BIN_EXE_voxflow"),
            graph.display(),
            input.display(),
            out.display()
        ))
        .env_remove("VOXFLOW_MAX_VOXELS")
        .output()
        .unwrap();
    assert_refused(&o, &input, &outs, &["RLIMIT_AS"], "ulimit -v");

    let o = copy(
        &graph,
        &input,
        &out,
        "auto",
        &[("VOXFLOW_MAX_VOXELS", "many")],
    );
    assert_refused(
        &o,
        &input,
        &outs,
        &["VOXFLOW_MAX_VOXELS=`many`"],
        "bad setting",
    );
}

/// The committed fuzz seeds (small valid synthetic files) read as volumes, plain and gzipped;
/// each input under `tests/fuzz_regressions/nifti` (a minimised input that once crashed the
/// reader) gives a volume or an error, never a panic.
#[test]
fn fuzz_seeds_read_and_regressions_do_not_panic() {
    use voxflow_nodes::io::nifti_io::read_nifti_from;
    let seeds: Vec<_> = std::fs::read_dir(root().join("fuzz/seeds/nifti"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(seeds.len() >= 10, "{seeds:?}");
    for p in &seeds {
        let b = std::fs::read(p).unwrap();
        for bytes in [b.clone(), gzip(&b, 2)] {
            let r = read_nifti_from(bytes.as_slice(), Some(bytes.len() as u64), p, None);
            assert!(r.is_ok(), "{}: {:?}", p.display(), r.err());
        }
    }
    let dir = root().join("tests/fuzz_regressions/nifti");
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let b = std::fs::read(&p).unwrap();
        for want in [
            None,
            Some(StreamType::Image),
            Some(StreamType::Label),
            Some(StreamType::Prob),
        ] {
            for bytes in [b.clone(), gzip(&b, 2)] {
                let r = std::panic::catch_unwind(|| {
                    read_nifti_from(bytes.as_slice(), Some(bytes.len() as u64), &p, want)
                        .map(|_| ())
                });
                assert!(r.is_ok(), "{} as {want:?}: panicked", p.display());
            }
        }
    }
}
