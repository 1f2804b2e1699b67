//! DICOM series reading. `read_series_with` runs the steps below in order, one function each:
//! list the folder, open every file (a file that cannot be opened is a bad file), pick the
//! series, check each slice's header for what a volume can hold, check that the slices agree,
//! sort them along the slice normal, decode the pixels into the volume, check the slice
//! spacing, and build the header.
//!
//! Bad files (empty, not DICOM, truncated or corrupt, without pixel data, pixel data that does
//! not decode) are an error naming the file, or with `skip_bad_files` a warning naming it.
//! Readable slices that cannot be represented (colour, multi-frame, bad spacing, a size that
//! differs from the other slices) are always an error: skipping them would hide a property of
//! the series.

use super::dicom_source::{DicomSource, Instance};
use dicom_core::header::HasLength;
use dicom_dictionary_std::tags;
use dicom_object::{open_file, DefaultDicomObject, Tag};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use ndarray::Array3;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use voxflow_runtime::stream::{Header, StreamType};

mod checks;
mod files;
mod geometry;
use checks::*;
use files::*;
use geometry::*;

/// A series read from a folder.
pub struct DicomSeries {
    pub header: Header,
    pub voxels: Array3<f32>,
    /// Per slice (in output order): the source SOP Instance UID and file.
    pub slices: Vec<(String, PathBuf)>,
}

/// How to read a series folder.
#[derive(Debug, Default, Clone, Copy)]
pub struct DicomOptions<'a> {
    /// The SeriesInstanceUID to read when the folder holds several series.
    pub series: Option<&'a str>,
    /// Skip bad files (empty, not DICOM, truncated or corrupt, no or undecodable pixels) with a
    /// warning naming each, instead of failing on the first.
    pub skip_bad_files: bool,
}

/// Reads the series in `dir`; any bad file is an error. With several series, `series` (a
/// SeriesInstanceUID) picks one; without it, the error lists them.
pub fn read_series(dir: &Path, series: Option<&str>) -> Result<DicomSeries, String> {
    read_series_with(
        dir,
        &DicomOptions {
            series,
            skip_bad_files: false,
        },
    )
}

/// Reads the series in `dir` as `opts` says.
pub fn read_series_with(dir: &Path, opts: &DicomOptions) -> Result<DicomSeries, String> {
    let mut bad = BadFiles {
        skip: opts.skip_bad_files,
        skipped: Vec::new(),
    };
    let files = list_files(dir, &mut bad)?;
    let objects = open_files(files, &mut bad)?;
    let (uid, chosen) = pick_series(dir, objects, opts.series, &bad)?;
    let mut slices = chosen
        .into_iter()
        .map(|(path, obj)| SliceFile::check(path, obj))
        .collect::<Result<Vec<_>, _>>()?;
    let grid = Grid::agreed(&slices)?;
    slices.sort_by(|a, b| {
        grid.along_normal(a.info.position)
            .total_cmp(&grid.along_normal(b.info.position))
    });
    super::budget::check_voxels(
        dir,
        grid.cols as u64,
        grid.rows as u64,
        slices.len() as u64,
        1,
        std::mem::size_of::<f32>() as u64,
    )?;
    // Identifiers come from the first slice's header; decoding drops the headers.
    let identity = Identity::of(&slices[0].obj);
    let (voxels, kept) = decode_slices(slices, &grid, &mut bad)?;
    if kept.is_empty() {
        return Err(format!(
            "{}: no file of series {uid} could be read ({} bad files skipped)",
            dir.display(),
            bad.skipped.len()
        ));
    }
    check_spacing(&kept, &grid)?;
    Ok(assemble(grid, kept, voxels, identity, &bad.skipped))
}

/// Groups the files by SeriesInstanceUID and returns the chosen series and its files.
fn pick_series(
    dir: &Path,
    objects: Vec<(PathBuf, DefaultDicomObject)>,
    series: Option<&str>,
    bad: &BadFiles,
) -> Result<(String, Vec<(PathBuf, DefaultDicomObject)>), String> {
    let mut groups = Groups::new();
    for (path, obj) in objects {
        let uid = text(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_default();
        groups.entry(uid).or_default().push((path, obj));
    }
    if groups.is_empty() {
        return Err(format!(
            "{}: no DICOM files found ({} bad files skipped)",
            dir.display(),
            bad.skipped.len()
        ));
    }
    let uid = match series {
        Some(s) if groups.contains_key(s) => s.to_string(),
        Some(s) => {
            return Err(format!(
                "{}: no series with SeriesInstanceUID {s}; {}",
                dir.display(),
                list(&groups)
            ))
        }
        None if groups.len() == 1 => groups.keys().next().cloned().unwrap_or_default(),
        None => {
            return Err(format!(
                "{} holds {} series; choose one with `series:` — {}",
                dir.display(),
                groups.len(),
                list(&groups)
            ))
        }
    };
    let files = groups.remove(&uid).unwrap_or_default();
    Ok((uid, files))
}

fn list(groups: &Groups) -> String {
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

fn text(o: &DefaultDicomObject, tag: Tag) -> Option<String> {
    o.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim().trim_end_matches('\0').to_string())
}

fn int(o: &DefaultDicomObject, tag: Tag) -> Option<i64> {
    o.get(tag).and_then(|e| e.to_int::<i64>().ok())
}

/// What the reader keeps of a slice's header.
struct SliceInfo {
    path: PathBuf,
    sop_uid: String,
    position: [f64; 3],
    orientation: [f64; 6],
    rows: usize,
    cols: usize,
    /// (row spacing, column spacing) in mm.
    pixel_spacing: [f64; 2],
    slice_thickness: Option<f64>,
}

/// A slice whose header holds one single-channel frame with finite geometry.
struct SliceFile {
    info: SliceInfo,
    obj: DefaultDicomObject,
}

impl SliceFile {
    /// Checks what a volume slice needs; any other content is refused by name.
    fn check(path: PathBuf, obj: DefaultDicomObject) -> Result<SliceFile, String> {
        let refuse = |what: String| format!("{}: {what}", path.display());
        check_transfer_syntax(&obj).map_err(refuse)?;
        check_single_channel(&obj).map_err(refuse)?;
        check_rescale(&obj).map_err(refuse)?;
        check_bits(&obj).map_err(refuse)?;
        let frames = match obj.get(tags::NUMBER_OF_FRAMES) {
            None => 1,
            Some(e) if e.is_empty() => 1,
            Some(e) => e.to_int::<i64>().unwrap_or(0),
        };
        if frames != 1 {
            return Err(refuse(format!(
                "NumberOfFrames is {frames}: multi-frame files are not read (one frame per file)"
            )));
        }
        let size = |tag, name: &str| match int(&obj, tag) {
            Some(v) if v >= 1 => Ok(v as usize),
            Some(v) => Err(refuse(format!("{name} is {v}"))),
            None => Err(refuse(format!("missing {name}"))),
        };
        let (rows, cols) = (size(tags::ROWS, "Rows")?, size(tags::COLUMNS, "Columns")?);
        let required = |tag, name: &str, count| {
            numbers(&obj, tag, name, count)
                .and_then(|v| v.ok_or_else(|| format!("missing {name}")))
                .map_err(refuse)
        };
        let ps = required(tags::PIXEL_SPACING, "PixelSpacing", 2)?;
        if !ps.iter().all(|x| x.is_finite() && *x > 0.0) {
            return Err(refuse(format!(
                "PixelSpacing {ps:?} is not two positive finite values (mm)"
            )));
        }
        let pos = required(tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient", 3)?;
        if !pos.iter().all(|x| x.is_finite()) {
            return Err(refuse(format!(
                "ImagePositionPatient {pos:?} is not finite"
            )));
        }
        let ori = required(
            tags::IMAGE_ORIENTATION_PATIENT,
            "ImageOrientationPatient",
            6,
        )?;
        if !orthonormal(&ori) {
            return Err(refuse(format!(
                "ImageOrientationPatient {ori:?} is not two perpendicular unit vectors"
            )));
        }
        let slice_thickness = numbers(&obj, tags::SLICE_THICKNESS, "SliceThickness", 1)
            .map_err(refuse)?
            .map(|v| v[0]);
        Ok(SliceFile {
            info: SliceInfo {
                sop_uid: text(&obj, tags::SOP_INSTANCE_UID).unwrap_or_default(),
                path,
                position: [pos[0], pos[1], pos[2]],
                orientation: [ori[0], ori[1], ori[2], ori[3], ori[4], ori[5]],
                rows,
                cols,
                pixel_spacing: [ps[0], ps[1]],
                slice_thickness,
            },
            obj,
        })
    }
}

/// The `count` numbers of a decimal tag; `None` when the tag is absent or empty.
fn numbers(
    obj: &DefaultDicomObject,
    tag: Tag,
    name: &str,
    count: usize,
) -> Result<Option<Vec<f64>>, String> {
    let Some(e) = obj.get(tag) else {
        return Ok(None);
    };
    if e.is_empty() {
        return Ok(None);
    }
    match e.to_multi_float64() {
        Ok(v) if v.len() == count => Ok(Some(v)),
        _ => Err(format!(
            "{name} {:?} is not {count} number{}",
            e.to_str().unwrap_or_default(),
            if count == 1 { "" } else { "s" }
        )),
    }
}

/// Decodes the sorted slices into one volume. A slice whose pixel data does not decode is a
/// bad file; the slices kept are returned with the volume.
fn decode_slices(
    slices: Vec<SliceFile>,
    grid: &Grid,
    bad: &mut BadFiles,
) -> Result<(Array3<f32>, Vec<SliceInfo>), String> {
    let plane = grid.rows * grid.cols;
    let mut data: Vec<f32> = Vec::new();
    data.try_reserve_exact(slices.len() * plane).map_err(|_| {
        format!(
            "not enough memory for {} slices of {}x{} voxels (from {})",
            slices.len(),
            grid.rows,
            grid.cols,
            slices[0].info.path.display()
        )
    })?;
    let mut kept = Vec::with_capacity(slices.len());
    for SliceFile { info, obj } in slices {
        match decode_slice(&obj, plane) {
            Ok(values) => {
                data.extend_from_slice(&values);
                kept.push(info);
            }
            Err(reason) => bad.report(&info.path, &reason)?,
        }
    }
    let voxels = Array3::from_shape_vec((kept.len(), grid.rows, grid.cols), data)
        .map_err(|e| format!("DICOM slices do not fill the volume: {e}"))?;
    Ok((voxels, kept))
}

/// The modality values (RescaleSlope / RescaleIntercept applied) of a one-frame slice.
fn decode_slice(obj: &DefaultDicomObject, plane: usize) -> Result<Vec<f32>, String> {
    let pixels = obj
        .decode_pixel_data()
        .map_err(|e| format!("cannot decode the pixel data: {}", error_chain(&e)))?;
    let values: Vec<f32> = pixels
        .to_vec()
        .map_err(|e| format!("cannot convert the pixel data: {}", error_chain(&e)))?;
    if values.len() != plane {
        return Err(format!(
            "the pixel data holds {} values, Rows x Columns is {plane}",
            values.len()
        ));
    }
    Ok(values)
}

/// The modality and the patient and study identifiers of the series.
struct Identity {
    modality: String,
    identifiers: BTreeMap<String, String>,
}

impl Identity {
    fn of(obj: &DefaultDicomObject) -> Identity {
        Identity {
            modality: text(obj, tags::MODALITY).unwrap_or_default(),
            identifiers: identifiers(obj),
        }
    }
}

fn identifiers(obj: &DefaultDicomObject) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
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
        if let Some(v) = text(obj, tag) {
            ids.insert(key.to_string(), v);
        }
    }
    ids
}

/// The header (LPS affine flipped to RAS, as NIfTI converters do) and per-slice identifiers.
fn assemble(
    grid: Grid,
    kept: Vec<SliceInfo>,
    voxels: Array3<f32>,
    identity: Identity,
    skipped: &[PathBuf],
) -> DicomSeries {
    let Identity {
        modality,
        identifiers,
    } = identity;
    let n = kept.len();
    let first = &kept[0];
    let [dr, dc] = first.pixel_spacing;
    let p0 = first.position;
    let kvec: [f64; 3] = if n > 1 {
        let pl = kept[n - 1].position;
        std::array::from_fn(|r| (pl[r] - p0[r]) / (n - 1) as f64)
    } else {
        let t = first.slice_thickness.unwrap_or(1.0);
        grid.normal.map(|x| x * t)
    };
    let mut affine = [[0.0; 4]; 4];
    for r in 0..3 {
        let flip = if r < 2 { -1.0 } else { 1.0 };
        affine[r][0] = flip * grid.row[r] * dc;
        affine[r][1] = flip * grid.col[r] * dr;
        affine[r][2] = flip * kvec[r];
        affine[r][3] = flip * p0[r];
    }
    affine[3][3] = 1.0;
    let dk = dot3(kvec, kvec).sqrt();
    let mut header = Header::new(StreamType::Image, [n, grid.rows, grid.cols], [dk, dr, dc]);
    header.affine = affine;
    crate::meta::set_modality(&mut header, &modality);
    // Geometry and per-slice identifiers (slice k order), for outputs that reference the source.
    DicomSource {
        orientation: grid.orientation,
        pixel_spacing: [dr, dc],
        rows: grid.rows,
        columns: grid.cols,
        slice_thickness: first.slice_thickness,
        instances: kept
            .iter()
            .map(|s| Instance {
                sop_instance_uid: s.sop_uid.clone(),
                position: s.position,
            })
            .collect(),
        skipped_files: skipped.iter().map(|p| p.display().to_string()).collect(),
        identifiers,
    }
    .store(&mut header);
    let slices = kept.into_iter().map(|s| (s.sop_uid, s.path)).collect();
    DicomSeries {
        header,
        voxels,
        slices,
    }
}
