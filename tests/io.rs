//! Volume I/O and CT preprocessing on real and synthetic data.

mod common;
use common::*;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use ndarray::{Array3, Axis};
use std::path::Path;
use voxflow_nodes::io::nifti_io::read_nifti;
use voxflow_nodes::io::read_volume::read_any;
use voxflow_nodes::preprocess::equalize::equalize_slice;
use voxflow_runtime::stream::StreamType;

fn assert_affine_eq(a: &[[f64; 4]; 4], b: &[[f64; 4]; 4], tol: f64) {
    for r in 0..4 {
        for c in 0..4 {
            assert!(
                (a[r][c] - b[r][c]).abs() <= tol,
                "affines differ:\n{a:?}\n{b:?}"
            );
        }
    }
}

#[test]
fn preprocess_graph_on_real_ct_keeps_geometry() {
    let Some(ct) = data_file("ircadb01_small_ct.nii.gz") else {
        return;
    };
    let d = temp_dir("pre-real");
    let out = d.join("pre.nii.gz");
    voxflow_ok(&[
        "run",
        "-q",
        root().join("graphs/ct_preprocess.yaml").to_str().unwrap(),
        "--set",
        &format!("input={}", ct.display()),
        "--set",
        &format!("output={}", out.display()),
    ]);
    let src = read_nifti(&ct, None).unwrap();
    let res = read_nifti(&out, None).unwrap();
    assert_eq!(res.header.shape, src.header.shape);
    assert_affine_eq(&res.header.affine, &src.header.affine, 1e-5);
    // Voxels: window [-100, 400], then per-slice equalisation over the window.
    let s = src.data;
    let voxflow_runtime::VolumeData::Image(img) = s else {
        panic!()
    };
    let voxflow_runtime::VolumeData::Image(got) = res.data else {
        panic!()
    };
    for k in [0usize, 60, 128] {
        let w = img.index_axis(Axis(0), k).mapv(|v| v.clamp(-100.0, 400.0));
        let e = equalize_slice(w.view(), -100.0, 400.0, 256);
        let g = got.index_axis(Axis(0), k);
        let maxdiff = e
            .iter()
            .zip(g.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(maxdiff < 1e-6, "slice {k}: {maxdiff}");
    }
    assert!(got.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(!d.read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("voxflow-tmp")));
}

#[test]
fn real_dicom_series_matches_its_nifti() {
    let Some(dir) = data_file("ircadb17_dicom") else {
        return;
    };
    let nii = data_file("ircadb17_ct.nii.gz").unwrap();
    let a = read_any(&dir, None, None).unwrap();
    let b = read_nifti(&nii, Some(StreamType::Image)).unwrap();
    assert_eq!(a.header.shape, b.header.shape);
    assert_affine_eq(&a.header.affine, &b.header.affine, 1e-3);
    let voxflow_runtime::VolumeData::Image(x) = &a.data else {
        panic!()
    };
    let voxflow_runtime::VolumeData::Image(y) = &b.data else {
        panic!()
    };
    assert!(x == y, "DICOM voxels differ from the NIfTI conversion");
    assert_eq!(voxflow_nodes::meta::modality(&a.header), "CT");
    assert!(a.header.meta["dicom"]["StudyInstanceUID"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert!(a.slice_meta[0]
        .as_ref()
        .unwrap()
        .contains_key("SOPInstanceUID"));
}

/// Writes one CT slice as a DICOM file.
fn write_slice(path: &Path, series: &str, z: f64, pixels: &[i16], rows: u16, cols: u16, n: usize) {
    let mut o = InMemDicomObject::new_empty();
    let sop = format!(
        "1.2.826.0.1.3680043.8.498.{}.{n}",
        series.len() * 1000 + (z * 10.0) as usize
    );
    let put = |o: &mut InMemDicomObject, tag, vr, v: PrimitiveValue| {
        o.put(DataElement::new(tag, vr, v));
    };
    put(
        &mut o,
        tags::SOP_CLASS_UID,
        VR::UI,
        "1.2.840.10008.5.1.4.1.1.2".into(),
    );
    put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, sop.clone().into());
    put(&mut o, tags::MODALITY, VR::CS, "CT".into());
    put(
        &mut o,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        "1.2.826.0.1.3680043.8.498.1".into(),
    );
    put(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, series.into());
    put(
        &mut o,
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        PrimitiveValue::Strs(
            ["-100".into(), "-50".into(), format!("{z}")]
                .into_iter()
                .collect(),
        ),
    );
    put(
        &mut o,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        PrimitiveValue::Strs(
            ["1", "0", "0", "0", "1", "0"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
    );
    put(
        &mut o,
        tags::PIXEL_SPACING,
        VR::DS,
        PrimitiveValue::Strs(["0.8".to_string(), "0.5".to_string()].into_iter().collect()),
    );
    put(&mut o, tags::ROWS, VR::US, PrimitiveValue::from(rows));
    put(&mut o, tags::COLUMNS, VR::US, PrimitiveValue::from(cols));
    put(
        &mut o,
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1u16),
    );
    put(
        &mut o,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2".into(),
    );
    put(
        &mut o,
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(16u16),
    );
    put(
        &mut o,
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(16u16),
    );
    put(&mut o, tags::HIGH_BIT, VR::US, PrimitiveValue::from(15u16));
    put(
        &mut o,
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(1u16),
    );
    put(&mut o, tags::RESCALE_SLOPE, VR::DS, "2".into());
    put(&mut o, tags::RESCALE_INTERCEPT, VR::DS, "-1024".into());
    put(
        &mut o,
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::I16(pixels.iter().copied().collect()),
    );
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
        .media_storage_sop_instance_uid(sop)
        .transfer_syntax("1.2.840.10008.1.2.1")
        .build()
        .unwrap();
    o.with_exact_meta(meta).write_to_file(path).unwrap();
}

/// Stored value of voxel (k, j, i) of the synthetic series.
fn stored(k: usize, j: usize, i: usize) -> i16 {
    (k * 100 + j * 10 + i) as i16
}

fn write_series(dir: &Path, series: &str, nk: usize, reverse_names: bool) {
    let (rows, cols) = (3u16, 4u16);
    for k in 0..nk {
        let px: Vec<i16> = (0..rows as usize)
            .flat_map(|j| (0..cols as usize).map(move |i| stored(k, j, i)))
            .collect();
        let name_index = if reverse_names { nk - 1 - k } else { k };
        // Slices 2.5 mm apart, starting at z = 10.
        write_slice(
            &dir.join(format!("{series}-{name_index:03}")),
            series,
            10.0 + 2.5 * k as f64,
            &px,
            rows,
            cols,
            k,
        );
    }
}

#[test]
fn synthetic_series_in_both_slice_orders() {
    for reverse in [false, true] {
        let d = temp_dir(&format!("dicom-{reverse}"));
        write_series(&d, "1.2.3.4", 5, reverse);
        let v = read_any(&d, None, None).unwrap();
        assert_eq!(v.header.shape, [5, 3, 4]);
        assert_eq!(v.header.spacing, [2.5, 0.8, 0.5]);
        let voxflow_runtime::VolumeData::Image(a) = &v.data else {
            panic!()
        };
        let expect =
            Array3::from_shape_fn((5, 3, 4), |(k, j, i)| stored(k, j, i) as f32 * 2.0 - 1024.0);
        assert_eq!(a, &expect, "reverse file order {reverse}");
        // RAS affine: x and y flipped from LPS, origin at the lowest slice.
        let expect_affine = [
            [-0.5, 0.0, 0.0, 100.0],
            [0.0, -0.8, 0.0, 50.0],
            [0.0, 0.0, 2.5, 10.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        assert_affine_eq(&v.header.affine, &expect_affine, 1e-9);
    }
}

#[test]
fn folder_with_two_series_lists_them() {
    let d = temp_dir("dicom-two");
    write_series(&d, "1.2.3.4", 3, false);
    write_series(&d, "1.2.3.5", 2, false);
    let e = read_any(&d, None, None).unwrap_err();
    assert!(
        e.contains("holds 2 series")
            && e.contains("1.2.3.4 (3 files)")
            && e.contains("1.2.3.5 (2 files)"),
        "{e}"
    );
    let v = read_any(&d, None, Some("1.2.3.5")).unwrap();
    assert_eq!(v.header.shape[0], 2);
    // Through a graph: the error names the node and its line.
    let g = write_graph(&d, "g.yaml", &format!("graph: t\nnodes:\n  ct: {{ kind: read_volume, path: {} }}\n  out: {{ kind: write_volume, in: ct, path: o.nii.gz }}\n", d.display()));
    let o = voxflow(&["run", "-q", g.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("node `ct` (read_volume)")
            && err.contains("g.yaml:3")
            && err.contains("holds 2 series"),
        "{err}"
    );
    assert!(!d.join("o.nii.gz").exists());
}

#[test]
fn nifti_round_trip_keeps_an_oblique_affine_and_labels() {
    use voxflow_nodes::io::nifti_io::write_nifti;
    use voxflow_runtime::stream::{Header, VolumeData};
    let d = temp_dir("roundtrip");
    let (c, s) = (0.8f64, 0.6f64);
    let mut h = Header::new(StreamType::Label, [4, 5, 6], [3.0, 0.9, 0.7]);
    h.affine = [
        [-0.7 * c, 0.9 * s, 0.0, 12.5],
        [-0.7 * s, -0.9 * c, 0.0, -40.0],
        [0.0, 0.0, 3.0, 7.25],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let lab = Array3::from_shape_fn((4, 5, 6), |(k, j, i)| ((k + j + i) % 3) as u8);
    let p = d.join("l.nii.gz");
    write_nifti(&p, &h, &VolumeData::Label(lab.clone())).unwrap();
    let back = read_nifti(&p, None).unwrap();
    assert_eq!(back.header.stream_type, StreamType::Label);
    assert_eq!(back.data, VolumeData::Label(lab));
    assert_affine_eq(&back.header.affine, &h.affine, 1e-5);
    // The qform alone gives the same geometry.
    let obj = nifti::ReaderOptions::new().read_file(&p).unwrap();
    let mut hdr = nifti::NiftiObject::header(&obj).clone();
    hdr.sform_code = 0;
    assert_affine_eq(
        &voxflow_nodes::io::nifti_io::header_affine(&hdr),
        &h.affine,
        1e-4,
    );
}

#[test]
fn phantom_runs_with_no_data() {
    let d = temp_dir("phantom");
    let out = d.join("p.nii.gz");
    let rep = d.join("r.json");
    voxflow_ok(&[
        "run",
        "-q",
        root().join("graphs/ct_preprocess.yaml").to_str().unwrap(),
        "--set",
        "input=phantom:small",
        "--set",
        &format!("output={}", out.display()),
        "--report",
        rep.to_str().unwrap(),
    ]);
    let v = read_nifti(&out, None).unwrap();
    assert_eq!(v.header.shape, [40, 128, 128]);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rep).unwrap()).unwrap();
    assert_eq!(r["nodes"].as_array().unwrap().len(), 4);
    assert_eq!(r["nodes"][1]["slices"], 40);
}
