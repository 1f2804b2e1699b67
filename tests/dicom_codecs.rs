//! DICOM pixel encodings on public sample files: the test files that ship inside the pydicom
//! wheel (installed in `.venv-train` by scripts/setup-training.sh, which `make test` runs;
//! pydicom's licence: MIT, test data as documented in its `data/test_files/README.txt`).
//! Nothing is copied into this repository. Voxels are compared with pydicom's own decoding
//! (tests/dicom_reference.py; Pillow/OpenJPEG for JPEG 2000, pyjpegls/CharLS for JPEG-LS) and
//! the geometry with the files' tags.

mod common;
use common::*;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use std::path::{Path, PathBuf};
use std::process::Command;
use voxflow_nodes::io::read_volume::read_any;
use voxflow_runtime::stream::VolumeData;
use voxflow_runtime::Volume;

/// The Python with pydicom (installed by scripts/setup-training.sh).
fn python() -> PathBuf {
    let py = root().join(".venv-train/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run `bash scripts/setup-training.sh` (it installs pydicom, whose test \
         files and decoders this test compares against)",
        py.display()
    );
    py
}

fn run_reference(args: &[&Path]) -> String {
    let o = Command::new(python())
        .arg(root().join("tests/dicom_reference.py"))
        .args(args)
        .output()
        .expect("run tests/dicom_reference.py");
    assert!(
        o.status.success(),
        "dicom_reference.py failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A file of pydicom's bundled test files.
fn sample(name: &str) -> PathBuf {
    let dir = PathBuf::from(run_reference(&[Path::new("--test-files")]));
    let p = dir.join(name);
    assert!(p.exists(), "pydicom's test file {} is missing", p.display());
    p
}

/// pydicom's decoding of `file`: modality values and the file's tags.
struct Reference {
    values: Vec<f32>,
    info: serde_json::Value,
}

fn reference(file: &Path, scratch: &Path) -> Reference {
    run_reference(&[scratch, file]);
    let name = file.file_name().unwrap().to_string_lossy();
    let bytes = std::fs::read(scratch.join(format!("{name}.f32"))).unwrap();
    let values = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let info =
        serde_json::from_slice(&std::fs::read(scratch.join(format!("{name}.json"))).unwrap())
            .unwrap();
    Reference { values, info }
}

/// Geometry given to sample files that have none: oblique rows/columns, to exercise the affine.
const POSITION: [f64; 3] = [-20.5, 31.25, 7.0];
const ORIENTATION: [f64; 6] = [0.8, 0.6, 0.0, 0.0, 0.0, -1.0];
const PIXEL_SPACING: [f64; 2] = [0.7, 0.9];

fn put_floats(obj: &mut dicom_object::DefaultDicomObject, tag: dicom_core::Tag, v: &[f64]) {
    let s = v
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("\\");
    obj.put(DataElement::new(tag, VR::DS, PrimitiveValue::from(s)));
}

/// A folder holding `file` alone, with the geometry tags added when the file has none.
fn one_file_folder(file: &Path, dir: &Path) -> PathBuf {
    let folder = dir.join(file.file_name().unwrap());
    std::fs::create_dir_all(&folder).unwrap();
    let mut obj = dicom_object::open_file(file).unwrap();
    if obj.get(tags::IMAGE_POSITION_PATIENT).is_none() {
        put_floats(&mut obj, tags::IMAGE_POSITION_PATIENT, &POSITION);
        put_floats(&mut obj, tags::IMAGE_ORIENTATION_PATIENT, &ORIENTATION);
        put_floats(&mut obj, tags::PIXEL_SPACING, &PIXEL_SPACING);
    }
    obj.write_to_file(folder.join("slice.dcm")).unwrap();
    folder
}

fn image(v: &Volume) -> Vec<f32> {
    let VolumeData::Image(a) = &v.data else {
        panic!("not an image")
    };
    a.iter().copied().collect()
}

fn floats(info: &serde_json::Value, key: &str) -> Option<Vec<f64>> {
    info.get(key).map(|v| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    })
}

/// The RAS affine of a one-slice volume from the DICOM tags (LPS, x and y flipped).
fn expected_affine(pos: &[f64], ori: &[f64], ps: &[f64], thickness: f64) -> [[f64; 4]; 4] {
    let (r, c) = (&ori[0..3], &ori[3..6]);
    let n = [
        r[1] * c[2] - r[2] * c[1],
        r[2] * c[0] - r[0] * c[2],
        r[0] * c[1] - r[1] * c[0],
    ];
    let mut a = [[0.0; 4]; 4];
    for i in 0..3 {
        let flip = if i < 2 { -1.0 } else { 1.0 };
        a[i] = [
            flip * r[i] * ps[1],
            flip * c[i] * ps[0],
            flip * n[i] * thickness,
            flip * pos[i],
        ];
    }
    a[3][3] = 1.0;
    a
}

/// Reads `name` through voxflow and compares it with pydicom: transfer syntax, voxels (exactly),
/// spacing and affine.
fn check_sample(name: &str, transfer_syntax: &str) {
    let d = temp_dir(&format!("codec-{name}"));
    let file = sample(name);
    let r = reference(&file, &d);
    assert_eq!(r.info["TransferSyntaxUID"], transfer_syntax, "{name}");
    let v =
        read_any(&one_file_folder(&file, &d), None, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (rows, cols) = (
        r.info["Rows"].as_u64().unwrap() as usize,
        r.info["Columns"].as_u64().unwrap() as usize,
    );
    assert_eq!(v.header.shape, [1, rows, cols], "{name}");
    let got = image(&v);
    let differing = got.iter().zip(&r.values).filter(|(a, b)| a != b).count();
    assert_eq!(got.len(), r.values.len(), "{name}");
    assert_eq!(
        differing, 0,
        "{name}: {differing} voxels differ from pydicom"
    );
    let pos = floats(&r.info, "ImagePositionPatient").unwrap_or(POSITION.to_vec());
    let ori = floats(&r.info, "ImageOrientationPatient").unwrap_or(ORIENTATION.to_vec());
    let ps = floats(&r.info, "PixelSpacing").unwrap_or(PIXEL_SPACING.to_vec());
    let thickness = r.info["SliceThickness"].as_f64().unwrap_or(1.0);
    assert_eq!(v.header.spacing, [thickness, ps[0], ps[1]], "{name}");
    let want = expected_affine(&pos, &ori, &ps, thickness);
    for (a, b) in v.header.affine.iter().flatten().zip(want.iter().flatten()) {
        assert!((a - b).abs() < 1e-9, "{name}: affine {:?}", v.header.affine);
    }
}

#[test]
fn jpeg2000_lossless_matches_pydicom() {
    check_sample("MR_small_jp2klossless.dcm", "1.2.840.10008.1.2.4.90");
}

#[test]
fn jpeg2000_lossy_ct_matches_pydicom() {
    check_sample("693_J2KI.dcm", "1.2.840.10008.1.2.4.91");
}

#[test]
fn jpeg_ls_lossless_matches_pydicom() {
    check_sample("MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80");
}

#[test]
fn jpeg_ls_near_lossless_matches_pydicom() {
    check_sample("JPEGLSNearLossless_16.dcm", "1.2.840.10008.1.2.4.81");
}

#[test]
fn rle_deflate_and_uncompressed_match_pydicom() {
    for (name, ts) in [
        ("MR_small_RLE.dcm", "1.2.840.10008.1.2.5"),
        ("image_dfl.dcm", "1.2.840.10008.1.2.1.99"),
        ("MR_small.dcm", "1.2.840.10008.1.2.1"),
        ("MR_small_implicit.dcm", "1.2.840.10008.1.2"),
        ("MR_small_bigendian.dcm", "1.2.840.10008.1.2.2"),
    ] {
        check_sample(name, ts);
    }
}

/// Independent of pydicom's decoders: every lossless encoding of MR_small decodes to the
/// voxels of the uncompressed file.
#[test]
fn lossless_twins_equal_the_uncompressed_file() {
    let d = temp_dir("codec-twins");
    let plain = read_any(&one_file_folder(&sample("MR_small.dcm"), &d), None, None).unwrap();
    let want = image(&plain);
    assert!(want.iter().any(|&x| x != want[0]), "MR_small is not flat");
    for twin in [
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_RLE.dcm",
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
    ] {
        let v = read_any(&one_file_folder(&sample(twin), &d), None, None).unwrap();
        assert_eq!(image(&v), want, "{twin}");
        assert_eq!(v.header.affine, plain.header.affine, "{twin}");
    }
}

/// A three-slice JPEG-LS series, files named against slice order: sorted by position, 4 mm apart.
#[test]
fn compressed_series_is_sorted_and_spaced() {
    let d = temp_dir("codec-series");
    let src = sample("MR_small_jpeg_ls_lossless.dcm");
    let folder = d.join("series");
    std::fs::create_dir_all(&folder).unwrap();
    let base = dicom_object::open_file(&src).unwrap();
    let ori: Vec<f64> = base
        .get(tags::IMAGE_ORIENTATION_PATIENT)
        .unwrap()
        .to_multi_float64()
        .unwrap();
    let pos: Vec<f64> = base
        .get(tags::IMAGE_POSITION_PATIENT)
        .unwrap()
        .to_multi_float64()
        .unwrap();
    let normal = [
        ori[1] * ori[5] - ori[2] * ori[4],
        ori[2] * ori[3] - ori[0] * ori[5],
        ori[0] * ori[4] - ori[1] * ori[3],
    ];
    for k in 0..3 {
        let mut obj = base.clone();
        let p: Vec<f64> = (0..3)
            .map(|i| pos[i] + 4.0 * k as f64 * normal[i])
            .collect();
        put_floats(&mut obj, tags::IMAGE_POSITION_PATIENT, &p);
        obj.put(DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(format!("1.2.826.0.1.3680043.8.498.77.{k}")),
        ));
        obj.write_to_file(folder.join(format!("z{}.dcm", 2 - k)))
            .unwrap();
    }
    let v = read_any(&folder, None, None).unwrap();
    assert_eq!(v.header.shape, [3, 64, 64]);
    assert!(
        (v.header.spacing[0] - 4.0).abs() < 1e-9,
        "{:?}",
        v.header.spacing
    );
    let single = image(&read_any(&one_file_folder(&src, &d), None, None).unwrap());
    let all = image(&v);
    for k in 0..3 {
        assert_eq!(&all[k * 4096..(k + 1) * 4096], &single[..], "slice {k}");
        let file = v.slice_meta[k].as_ref().unwrap()["file"].as_str().unwrap();
        assert!(
            file.ends_with(&format!("z{}.dcm", 2 - k)),
            "slice {k}: {file}"
        );
    }
}

/// JPEG baseline, made at test time: a synthetic 8-bit image encoded by Pillow into
/// MR_small's header. Decoders may round the inverse DCT differently, so voxflow is compared
/// with pydicom within one grey level, and with the image before encoding within the loss of
/// quality 90.
#[test]
fn jpeg_baseline_matches_pydicom() {
    let d = temp_dir("codec-jpeg");
    std::fs::create_dir_all(d.join("made")).unwrap();
    let file = d.join("made/jpeg_baseline.dcm");
    run_reference(&[Path::new("--make-jpeg"), &sample("MR_small.dcm"), &file]);
    let r = reference(&file, &d);
    assert_eq!(r.info["TransferSyntaxUID"], "1.2.840.10008.1.2.4.50");
    let v = read_any(&one_file_folder(&file, &d), None, None).unwrap();
    assert_eq!(v.header.shape, [1, 64, 64]);
    let got = image(&v);
    let before: Vec<f32> = std::fs::read(d.join("made/jpeg_baseline.dcm.u8"))
        .unwrap()
        .into_iter()
        .map(f32::from)
        .collect();
    let max_diff = |a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    };
    let vs_pydicom = max_diff(&got, &r.values);
    let vs_image = max_diff(&got, &before);
    assert!(
        vs_pydicom <= 1.0,
        "differs from pydicom by up to {vs_pydicom}"
    );
    assert!(
        vs_image <= 3.0,
        "differs from the image before encoding by up to {vs_image}"
    );
    assert_eq!(v.header.spacing[1..], [0.3125, 0.3125]);
}
