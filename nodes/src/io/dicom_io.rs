//! DICOM series reading: group by SeriesInstanceUID, sort along the slice normal, rescale.

use dicom_dictionary_std::tags;
use dicom_object::{open_file, DefaultDicomObject};
use dicom_pixeldata::PixelDecoder;
use ndarray::Array3;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use voxflow_runtime::stream::{Header, Meta, StreamType};

/// A series read from a folder.
pub struct DicomSeries {
    pub header: Header,
    pub voxels: Array3<f32>,
    /// Per slice (in output order): the source SOP Instance UID and file.
    pub slices: Vec<(String, PathBuf)>,
}

fn text(o: &DefaultDicomObject, tag: dicom_object::Tag) -> Option<String> {
    o.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim().trim_end_matches('\0').to_string())
}

fn floats(o: &DefaultDicomObject, tag: dicom_object::Tag) -> Option<Vec<f64>> {
    o.get(tag).and_then(|e| e.to_multi_float64().ok())
}

struct Instance {
    path: PathBuf,
    obj: DefaultDicomObject,
    position: [f64; 3],
    orientation: [f64; 6],
}

/// Reads the series in `dir`. With several series, `series` (a SeriesInstanceUID) picks one;
/// without it, the error lists them.
pub fn read_series(dir: &Path, series: Option<&str>) -> Result<DicomSeries, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list DICOM folder {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut groups: BTreeMap<String, Vec<(PathBuf, DefaultDicomObject)>> = BTreeMap::new();
    let mut skipped = 0;
    for f in files {
        match open_file(&f) {
            Ok(obj) => {
                let uid = text(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_default();
                groups.entry(uid).or_default().push((f, obj));
            }
            Err(_) => skipped += 1,
        }
    }
    if groups.is_empty() {
        return Err(format!(
            "{}: no DICOM files found ({skipped} other files)",
            dir.display()
        ));
    }
    let uid = match series {
        Some(s) => {
            if !groups.contains_key(s) {
                return Err(format!(
                    "{}: no series with SeriesInstanceUID {s}; {}",
                    dir.display(),
                    list(&groups)
                ));
            }
            s.to_string()
        }
        None if groups.len() == 1 => groups.keys().next().expect("one").clone(),
        None => {
            return Err(format!(
                "{} holds {} series; choose one with `series:` — {}",
                dir.display(),
                groups.len(),
                list(&groups)
            ))
        }
    };
    let objs = groups.remove(&uid).expect("present");
    let mut inst = Vec::new();
    for (path, obj) in objs {
        let pos = floats(&obj, tags::IMAGE_POSITION_PATIENT)
            .filter(|v| v.len() == 3)
            .ok_or_else(|| format!("{}: missing ImagePositionPatient", path.display()))?;
        let ori = floats(&obj, tags::IMAGE_ORIENTATION_PATIENT)
            .filter(|v| v.len() == 6)
            .ok_or_else(|| format!("{}: missing ImageOrientationPatient", path.display()))?;
        inst.push(Instance {
            path,
            obj,
            position: [pos[0], pos[1], pos[2]],
            orientation: [ori[0], ori[1], ori[2], ori[3], ori[4], ori[5]],
        });
    }
    let o = inst[0].orientation;
    let row = [o[0], o[1], o[2]];
    let col = [o[3], o[4], o[5]];
    let normal = [
        row[1] * col[2] - row[2] * col[1],
        row[2] * col[0] - row[0] * col[2],
        row[0] * col[1] - row[1] * col[0],
    ];
    let dot = |a: [f64; 3], b: [f64; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    for i in &inst {
        if i.orientation
            .iter()
            .zip(o.iter())
            .any(|(a, b)| (a - b).abs() > 1e-4)
        {
            return Err(format!(
                "{}: ImageOrientationPatient differs within the series",
                i.path.display()
            ));
        }
    }
    inst.sort_by(|a, b| dot(a.position, normal).total_cmp(&dot(b.position, normal)));
    let n = inst.len();
    let proj: Vec<f64> = inst.iter().map(|i| dot(i.position, normal)).collect();
    let step = if n > 1 {
        (proj[n - 1] - proj[0]) / (n - 1) as f64
    } else {
        1.0
    };
    for w in proj.windows(2) {
        let d = w[1] - w[0];
        if d.abs() < 1e-6 {
            return Err(format!(
                "{}: two slices share the position {:.3} mm along the normal",
                dir.display(),
                w[0]
            ));
        }
        if (d - step).abs() > 0.01 * step.abs().max(1e-3) + 1e-3 {
            return Err(format!(
                "{}: slice spacing is not uniform ({d:.4} mm between two slices, mean {step:.4} mm)",
                dir.display()
            ));
        }
    }
    let first = &inst[0].obj;
    let rows: usize = first
        .get(tags::ROWS)
        .and_then(|e| e.to_int::<u32>().ok())
        .ok_or("missing Rows")? as usize;
    let cols: usize = first
        .get(tags::COLUMNS)
        .and_then(|e| e.to_int::<u32>().ok())
        .ok_or("missing Columns")? as usize;
    let ps = floats(first, tags::PIXEL_SPACING)
        .filter(|v| v.len() == 2)
        .ok_or_else(|| format!("{}: missing PixelSpacing", inst[0].path.display()))?;
    let (dr, dc) = (ps[0], ps[1]);
    let mut voxels = Array3::<f32>::zeros((n, rows, cols));
    let mut slices = Vec::with_capacity(n);
    let mut instances = Vec::with_capacity(n);
    for (k, i) in inst.iter().enumerate() {
        let r: usize = i
            .obj
            .get(tags::ROWS)
            .and_then(|e| e.to_int::<u32>().ok())
            .unwrap_or(0) as usize;
        let c: usize = i
            .obj
            .get(tags::COLUMNS)
            .and_then(|e| e.to_int::<u32>().ok())
            .unwrap_or(0) as usize;
        if (r, c) != (rows, cols) {
            return Err(format!(
                "{}: {r}x{c} pixels, the series has {rows}x{cols}",
                i.path.display()
            ));
        }
        let pix = i
            .obj
            .decode_pixel_data()
            .map_err(|e| format!("{}: cannot decode pixel data: {e}", i.path.display()))?;
        // to_vec applies RescaleSlope / RescaleIntercept (the modality LUT).
        let v: Vec<f32> = pix
            .to_vec()
            .map_err(|e| format!("{}: cannot convert pixel data: {e}", i.path.display()))?;
        if v.len() < rows * cols {
            return Err(format!("{}: pixel data too short", i.path.display()));
        }
        voxels
            .index_axis_mut(ndarray::Axis(0), k)
            .as_slice_mut()
            .expect("contiguous")
            .copy_from_slice(&v[..rows * cols]);
        let uid = text(&i.obj, tags::SOP_INSTANCE_UID).unwrap_or_default();
        instances.push(serde_json::json!({
            "SOPInstanceUID": uid,
            "ImagePositionPatient": i.position,
        }));
        slices.push((uid, i.path.clone()));
    }
    // LPS affine, then RAS (flip x and y), as NIfTI converters do.
    let p0 = inst[0].position;
    let kvec: [f64; 3] = if n > 1 {
        let pl = inst[n - 1].position;
        [
            (pl[0] - p0[0]) / (n - 1) as f64,
            (pl[1] - p0[1]) / (n - 1) as f64,
            (pl[2] - p0[2]) / (n - 1) as f64,
        ]
    } else {
        let t = floats(first, tags::SLICE_THICKNESS)
            .and_then(|v| v.first().copied())
            .unwrap_or(1.0);
        [normal[0] * t, normal[1] * t, normal[2] * t]
    };
    let mut affine = [[0.0; 4]; 4];
    for r in 0..3 {
        let flip = if r < 2 { -1.0 } else { 1.0 };
        affine[r][0] = flip * row[r] * dc;
        affine[r][1] = flip * col[r] * dr;
        affine[r][2] = flip * kvec[r];
        affine[r][3] = flip * p0[r];
    }
    affine[3][3] = 1.0;
    let dk = (kvec[0] * kvec[0] + kvec[1] * kvec[1] + kvec[2] * kvec[2]).sqrt();
    let mut header = Header::new(StreamType::Image, [n, rows, cols], [dk, dr, dc]);
    header.affine = affine;
    header.modality = text(first, tags::MODALITY).unwrap_or_default();
    let mut meta = Meta::new();
    for (key, tag) in [
        ("PatientID", tags::PATIENT_ID),
        ("PatientName", tags::PATIENT_NAME),
        ("PatientBirthDate", tags::PATIENT_BIRTH_DATE),
        ("PatientSex", tags::PATIENT_SEX),
        ("StudyInstanceUID", tags::STUDY_INSTANCE_UID),
        ("StudyDate", tags::STUDY_DATE),
        ("StudyTime", tags::STUDY_TIME),
        ("StudyID", tags::STUDY_ID),
        ("AccessionNumber", tags::ACCESSION_NUMBER),
        ("ReferringPhysicianName", tags::REFERRING_PHYSICIAN_NAME),
        ("SeriesInstanceUID", tags::SERIES_INSTANCE_UID),
        ("FrameOfReferenceUID", tags::FRAME_OF_REFERENCE_UID),
        ("SOPClassUID", tags::SOP_CLASS_UID),
        ("StudyDescription", tags::STUDY_DESCRIPTION),
        (
            "PositionReferenceIndicator",
            tags::POSITION_REFERENCE_INDICATOR,
        ),
    ] {
        if let Some(v) = text(first, tag) {
            meta.insert(key.into(), v.into());
        }
    }
    // Geometry and per-slice identifiers (slice k order), for outputs that reference the source.
    meta.insert("ImageOrientationPatient".into(), o.to_vec().into());
    meta.insert("PixelSpacing".into(), vec![dr, dc].into());
    meta.insert("Rows".into(), rows.into());
    meta.insert("Columns".into(), cols.into());
    if let Some(t) = floats(first, tags::SLICE_THICKNESS).and_then(|v| v.first().copied()) {
        meta.insert("SliceThickness".into(), t.into());
    }
    meta.insert("instances".into(), instances.into());
    header.meta.insert(
        "dicom".into(),
        serde_json::Value::Object(meta.into_iter().collect()),
    );
    Ok(DicomSeries {
        header,
        voxels,
        slices,
    })
}

fn list(groups: &BTreeMap<String, Vec<(PathBuf, DefaultDicomObject)>>) -> String {
    groups
        .iter()
        .map(|(uid, v)| {
            let desc = text(&v[0].1, tags::SERIES_DESCRIPTION).unwrap_or_default();
            format!(
                "{uid} ({} files{})",
                v.len(),
                if desc.is_empty() {
                    String::new()
                } else {
                    format!(", \"{desc}\"")
                }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
