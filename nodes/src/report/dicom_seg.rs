//! `write_dicom_seg`: a label volume as a DICOM Segmentation (binary; liver and lesion
//! segments) that references the source DICOM series slice by slice.

use crate::io::dicom_source::{DicomSource, Instance};
use dicom_core::smallvec::SmallVec;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use ndarray::{Array3, Axis};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;
use voxflow_runtime::decl::PortType;
use voxflow_runtime::node::check_slice;
use voxflow_runtime::stream::StreamType;
use voxflow_runtime::{
    BuildEnv, Header, Node, NodeCtx, NodeDecl, NodeError, NodeParams, ParamEnum, TypedKind, Volume,
};

pub struct WriteDicomSeg;

/// Segmentation Storage.
pub const SEG_SOP_CLASS_UID: &str = "1.2.840.10008.5.1.4.1.1.66.4";
const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
const SERIES_NUMBER: &str = "1000";

const DOCS: &str = r#"
Writes the label volume (0 background, 1 liver, 2 lesion; other values are an error) as a DICOM
Segmentation object (SOP Class 1.2.840.10008.5.1.4.1.1.66.4, `BINARY`, Explicit VR Little
Endian) when the stream comes from a DICOM series read by `read_volume`. The source identifiers
come from the stream metadata (`dicom`: patient, study, series, and per slice the SOP Instance
UID and ImagePositionPatient); they travel through every node of a graph, so the label of a
pipeline carries them. Connect `source` (e.g. the `read_volume` output) to take them from another
stream on the same grid instead, such as a label read from a NIfTI file; both streams are then
read in full before anything is checked.

- Two segments: 1 `Liver` = label >= 1 (the whole liver, lesions included; category SCT
  91723000 Anatomical Structure, type SCT 10200004 Liver) and 2 `Liver lesion` = label 2
  (category SCT 49755003 Morphologically Abnormal Structure, type SCT 52988006 Lesion, anatomic
  region SCT 10200004 Liver). Both are `AUTOMATIC`, algorithm `voxflow` (family DCM 123110
  Artificial Intelligence) with the voxflow version. `SegmentsOverlap` is `YES` when there is a
  lesion (it lies inside the liver segment).
- One frame per segment and source slice, ordered by segment, then slice. **Empty frames are
  omitted**: a frame is written only where its segment has at least one pixel in that slice
  (if the whole volume is empty, all frames are written, since a SEG needs at least one).
  Every frame carries its own Plane Position (the source slice's ImagePositionPatient), a
  Derivation Image / Source Image reference to the source slice's SOP Instance, its Segment
  Identification and Dimension Index Values (segment number, 1-based slice index), so an
  omitted frame can never shift the others.
- Shared functional groups: Pixel Measures (PixelSpacing, SliceThickness, SpacingBetweenSlices)
  and Plane Orientation of the source. Patient and study attributes are copied from the
  source; the Series (number 1000) and SOP Instance UIDs are new (`2.25.<random UUID>`); the
  Frame of Reference UID is the source's, or a new one where the source has none.
- The label must lie on the source grid: same slice count, rows and columns, and an affine
  whose slice origins and in-plane axes match the DICOM positions, orientation and spacing.

`if_unavailable` says what a stream without DICOM identifiers (a NIfTI file, the phantom)
does: `skip` writes no file and logs one line; `error` fails the graph before any output file
of the graph is written (without `source`: as soon as the label's header arrives).
"#;

/// `if_unavailable` param: what a stream without DICOM identifiers does.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, ParamEnum)]
#[serde(rename_all = "snake_case")]
pub enum IfUnavailable {
    Skip,
    Error,
}

/// Params of `write_dicom_seg`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct DicomSegParams {
    /// output DICOM file (e.g. `seg.seg.dcm`)
    #[param(writes)]
    pub path: PathBuf,
    /// input not from a DICOM series: `skip` (log one line) or `error`
    #[param(default = IfUnavailable::Error)]
    pub if_unavailable: IfUnavailable,
}

impl TypedKind for WriteDicomSeg {
    type Params = DicomSegParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            "write_dicom_seg",
            "Write the liver/lesion labels as a DICOM SEG referencing the source series",
        )
        .docs(DOCS)
        .input(
            "label",
            PortType::Fixed(StreamType::Label),
            "labels: 0 background, 1 liver, 2 lesion",
        )
        .optional_input(
            "source",
            PortType::Any,
            "stream whose metadata names the DICOM series (default: `label`'s own)",
        )
    }

    fn create(&self, p: DicomSegParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(SegNode {
            path: p.path,
            skip: p.if_unavailable == IfUnavailable::Skip,
        }))
    }
}

struct SegNode {
    path: PathBuf,
    skip: bool,
}

impl SegNode {
    /// The source identifiers of `h`, or what to do when it has none: `Ok(None)` to skip.
    fn source(&self, ctx: &NodeCtx, h: &Header) -> Result<Option<SourceSeries>, NodeError> {
        if let Some(s) = SourceSeries::from_header(h)? {
            return Ok(Some(s));
        }
        let what = format!(
            "the input{} is not a DICOM series",
            h.meta
                .get("source")
                .and_then(Value::as_str)
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        );
        if self.skip {
            tracing::warn!(
                "{}: {what}: no DICOM SEG written to {}",
                ctx.id(),
                self.path.display()
            );
            Ok(None)
        } else {
            Err(NodeError::msg(format!(
                "{what} (no DICOM identifiers in the stream metadata), so no DICOM SEG can be \
                 written to {}; read a DICOM folder, or set `if_unavailable: skip`",
                self.path.display()
            )))
        }
    }
}

impl Node for SegNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let (label, src) = if ctx.has_input("source") {
            // Both in parallel: they may share an upstream node.
            let mut v = ctx.gather_many(&["label", "source"])?;
            let source = v.pop().expect("two volumes");
            let label = v.pop().expect("two volumes");
            let Some(src) = self.source(ctx, &source.header)? else {
                return Ok(());
            };
            (label, src)
        } else {
            let h = ctx.header_of("label", StreamType::Label)?;
            let Some(src) = self.source(ctx, &h)? else {
                return Ok(());
            };
            let mut v = Volume::zeros((*h).clone());
            ctx.set_total(h.num_slices());
            while let Some(s) = ctx.next_slice("label")? {
                check_slice(&v.header, &s, "label")?;
                v.put(&s);
                ctx.tick();
            }
            (v, src)
        };
        src.check_grid(&label.header)?;
        let labels = label.label().expect("label stream");
        check_values(labels)?;
        let obj = segmentation(labels, &src, label.header.spacing[0])?;
        let tmp = ctx.output_file(&self.path)?;
        obj.write_to_file(&tmp)
            .map_err(|e| NodeError::msg(format!("cannot write {}: {e}", self.path.display())))?;
        Ok(())
    }
}

/// The source series as `read_volume` records it in the header metadata ([`DicomSource`]),
/// checked for what a DICOM SEG needs.
pub struct SourceSeries {
    pub dicom: DicomSource,
    /// Where the series was read from (for messages).
    folder: String,
}

impl SourceSeries {
    /// `Ok(None)` when the stream carries no DICOM identifiers (NIfTI, phantom).
    pub fn from_header(h: &Header) -> Result<Option<Self>, String> {
        let Some(dicom) = DicomSource::from_header(h)? else {
            return Ok(None);
        };
        let bad = |what: &str| format!("the stream's DICOM metadata has no valid {what}");
        if dicom
            .instances
            .iter()
            .any(|i| i.sop_instance_uid.is_empty())
        {
            return Err(bad("SOPInstanceUID per slice"));
        }
        let s = SourceSeries {
            dicom,
            folder: h
                .meta
                .get("source")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        };
        for key in ["StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID"] {
            if s.attr(key).is_empty() {
                return Err(bad(key));
            }
        }
        Ok(Some(s))
    }

    /// A copied identifier, empty when the source has none.
    pub fn attr(&self, key: &str) -> &str {
        self.dicom.identifier(key)
    }

    fn name(&self) -> String {
        format!(
            "DICOM series {} ({})",
            self.attr("SeriesInstanceUID"),
            self.folder
        )
    }

    /// Checks that a stream lies on this series' grid: slice count, rows, columns, in-plane
    /// axes and each slice's origin (the slice origin within 1% of the slice step).
    pub fn check_grid(&self, h: &Header) -> Result<(), String> {
        let [nk, nj, ni] = h.shape;
        if [nk, nj, ni]
            != [
                self.dicom.instances.len(),
                self.dicom.rows,
                self.dicom.columns,
            ]
        {
            return Err(format!(
                "{} has {} slices of {}x{} (rows x columns), the label {} of {nj}x{ni}",
                self.name(),
                self.dicom.instances.len(),
                self.dicom.rows,
                self.dicom.columns,
                nk
            ));
        }
        // The affine is RAS; DICOM is LPS.
        let lps = |r: usize, v: f64| if r < 2 { -v } else { v };
        let a = &h.affine;
        let [dr, dc] = self.dicom.pixel_spacing;
        let o = &self.dicom.orientation;
        let close = |x: f64, y: f64, tol: f64| (x - y).abs() <= tol + 1e-4 * y.abs();
        for r in 0..3 {
            if !close(lps(r, a[r][0]), o[r] * dc, 1e-4)
                || !close(lps(r, a[r][1]), o[3 + r] * dr, 1e-4)
            {
                return Err(format!(
                    "the label's in-plane axes differ from {}'s orientation {o:?} and spacing {:?}: {}",
                    self.name(),
                    self.dicom.pixel_spacing,
                    h.describe("label")
                ));
            }
        }
        let tol = 0.01 * h.spacing[0] + 1e-3;
        for (
            k,
            Instance {
                sop_instance_uid: uid,
                position: p,
            },
        ) in self.dicom.instances.iter().enumerate()
        {
            let q: Vec<f64> = (0..3)
                // `+ 0.0` prints -0.0 as 0.
                .map(|r| lps(r, a[r][2] * k as f64 + a[r][3]) + 0.0)
                .collect();
            if (0..3).any(|r| !close(q[r], p[r], tol)) {
                return Err(format!(
                    "label slice {k} lies at {q:?} (LPS mm), its source slice {uid} at {p:?}: \
                     the label is not on the grid of {}",
                    self.name()
                ));
            }
        }
        Ok(())
    }
}

/// Every label must be 0, 1 or 2.
fn check_values(labels: &Array3<u8>) -> Result<(), String> {
    for (k, plane) in labels.outer_iter().enumerate() {
        if let Some(v) = plane.iter().find(|&&v| v > 2) {
            return Err(format!(
                "label value {v} in slice {k}: a DICOM SEG is written from 0 background, \
                 1 liver, 2 lesion"
            ));
        }
    }
    Ok(())
}

/// The segment numbers: 1 liver, 2 lesion.
const SEGMENTS: [u16; 2] = [1, 2];

/// Whether label value `v` belongs to `segment` (liver: >= 1, lesion: 2).
fn inside(segment: u16, v: u8) -> bool {
    if segment == 1 {
        v >= 1
    } else {
        v == 2
    }
}

/// The frames to write, `(segment number, slice k)` in segment-then-slice order: the frames
/// with at least one pixel, or every frame when all are empty.
pub fn frames(labels: &Array3<u8>) -> Vec<(u16, usize)> {
    let nk = labels.len_of(Axis(0));
    let all: Vec<(u16, usize)> = SEGMENTS
        .iter()
        .flat_map(|&s| (0..nk).map(move |k| (s, k)))
        .collect();
    let present: Vec<(u16, usize)> = all
        .iter()
        .copied()
        .filter(|&(s, k)| labels.index_axis(Axis(0), k).iter().any(|&v| inside(s, v)))
        .collect();
    if present.is_empty() {
        all
    } else {
        present
    }
}

/// The frames' masks as one bit stream (first pixel in the lowest bit, no padding between
/// frames), padded to an even byte count.
pub fn pack_frames(labels: &Array3<u8>, frames: &[(u16, usize)]) -> Vec<u8> {
    let (_, nj, ni) = labels.dim();
    let bits = frames.len() * nj * ni;
    let mut out = vec![0u8; bits.div_ceil(8).next_multiple_of(2)];
    let mut b = 0;
    for &(s, k) in frames {
        for &v in labels.index_axis(Axis(0), k).iter() {
            if inside(s, v) {
                out[b / 8] |= 1 << (b % 8);
            }
            b += 1;
        }
    }
    out
}

/// A Decimal String value of at most 16 characters.
pub fn ds(x: f64) -> String {
    let s = format!("{x}");
    if s.len() <= 16 {
        return s;
    }
    for p in (0..=15).rev() {
        let t = format!("{x:.p$}");
        let t = if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        };
        if t.len() <= 16 {
            return t;
        }
    }
    format!("{x:.9e}")
}

/// A new UID from a random UUID (`2.25.<128-bit integer>`).
pub fn new_uid() -> String {
    format!("2.25.{}", uuid::Uuid::new_v4().as_u128())
}

fn el(tag: Tag, vr: VR, v: impl Into<PrimitiveValue>) -> InMemElement {
    DataElement::new(tag, vr, v.into())
}

fn strs<S: ToString>(tag: Tag, vr: VR, v: &[S]) -> InMemElement {
    el(
        tag,
        vr,
        PrimitiveValue::Strs(v.iter().map(ToString::to_string).collect()),
    )
}

fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn item(elements: Vec<InMemElement>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

fn code(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    item(vec![
        el(tags::CODE_VALUE, VR::SH, value),
        el(tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme),
        el(tags::CODE_MEANING, VR::LO, meaning),
    ])
}

fn segment(number: u16, lesion: bool) -> InMemDicomObject {
    let version = env!("CARGO_PKG_VERSION");
    let mut e = vec![
        el(tags::SEGMENT_NUMBER, VR::US, number),
        el(
            tags::SEGMENT_LABEL,
            VR::LO,
            if lesion { "Liver lesion" } else { "Liver" },
        ),
        el(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC"),
        el(tags::SEGMENT_ALGORITHM_NAME, VR::LO, "voxflow"),
        seq(
            tags::SEGMENTATION_ALGORITHM_IDENTIFICATION_SEQUENCE,
            vec![item(vec![
                seq(
                    tags::ALGORITHM_FAMILY_CODE_SEQUENCE,
                    vec![code("123110", "DCM", "Artificial Intelligence")],
                ),
                el(tags::ALGORITHM_VERSION, VR::LO, version),
                el(tags::ALGORITHM_NAME, VR::LO, "voxflow"),
            ])],
        ),
    ];
    if lesion {
        e.extend([
            seq(
                tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
                vec![code(
                    "49755003",
                    "SCT",
                    "Morphologically Abnormal Structure",
                )],
            ),
            seq(
                tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
                vec![code("52988006", "SCT", "Lesion")],
            ),
            seq(
                tags::ANATOMIC_REGION_SEQUENCE,
                vec![code("10200004", "SCT", "Liver")],
            ),
        ]);
    } else {
        e.extend([
            seq(
                tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
                vec![code("91723000", "SCT", "Anatomical Structure")],
            ),
            seq(
                tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
                vec![code("10200004", "SCT", "Liver")],
            ),
        ]);
    }
    item(e)
}

/// The per-frame functional groups of frame `(segment, k)`.
fn frame_groups(src: &SourceSeries, segment: u16, k: usize) -> InMemDicomObject {
    let Instance {
        sop_instance_uid: uid,
        position: pos,
    } = &src.dicom.instances[k];
    item(vec![
        seq(
            tags::DERIVATION_IMAGE_SEQUENCE,
            vec![item(vec![
                seq(
                    tags::SOURCE_IMAGE_SEQUENCE,
                    vec![item(vec![
                        el(
                            tags::REFERENCED_SOP_CLASS_UID,
                            VR::UI,
                            src.attr("SOPClassUID"),
                        ),
                        el(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, uid.as_str()),
                        el(tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES"),
                        seq(
                            tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                            vec![code(
                                "121322",
                                "DCM",
                                "Source image for image processing operation",
                            )],
                        ),
                    ])],
                ),
                seq(
                    tags::DERIVATION_CODE_SEQUENCE,
                    vec![code("113076", "DCM", "Segmentation")],
                ),
            ])],
        ),
        seq(
            tags::FRAME_CONTENT_SEQUENCE,
            vec![item(vec![el(
                tags::DIMENSION_INDEX_VALUES,
                VR::UL,
                PrimitiveValue::U32([u32::from(segment), k as u32 + 1].into_iter().collect()),
            )])],
        ),
        seq(
            tags::PLANE_POSITION_SEQUENCE,
            vec![item(vec![strs(
                tags::IMAGE_POSITION_PATIENT,
                VR::DS,
                &pos.map(ds),
            )])],
        ),
        seq(
            tags::SEGMENT_IDENTIFICATION_SEQUENCE,
            vec![item(vec![el(
                tags::REFERENCED_SEGMENT_NUMBER,
                VR::US,
                segment,
            )])],
        ),
    ])
}

/// The Segmentation object of `labels` (checked: on the source grid, values 0..=2).
/// `slice_step` is the distance between slice centres in mm.
pub fn segmentation(
    labels: &Array3<u8>,
    src: &SourceSeries,
    slice_step: f64,
) -> Result<dicom_object::DefaultDicomObject, String> {
    let frames = frames(labels);
    let pixels = pack_frames(labels, &frames);
    let sop_uid = new_uid();
    let dim_uid = new_uid();
    let now = chrono::Local::now();
    let (date, time) = (
        now.format("%Y%m%d").to_string(),
        now.format("%H%M%S").to_string(),
    );
    let frame_of_reference = match src.attr("FrameOfReferenceUID") {
        "" => new_uid(),
        f => f.to_string(),
    };
    let overlap = labels.iter().any(|&v| v == 2);
    let [dr, dc] = src.dicom.pixel_spacing;
    let thickness = src.dicom.slice_thickness.unwrap_or(slice_step);
    let dimension = |pointer: Tag, group: Tag, label: &str| {
        item(vec![
            el(tags::DIMENSION_ORGANIZATION_UID, VR::UI, dim_uid.as_str()),
            el(
                tags::DIMENSION_INDEX_POINTER,
                VR::AT,
                PrimitiveValue::Tags([pointer].into_iter().collect()),
            ),
            el(
                tags::FUNCTIONAL_GROUP_POINTER,
                VR::AT,
                PrimitiveValue::Tags([group].into_iter().collect()),
            ),
            el(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label),
        ])
    };
    let copied = [
        (tags::PATIENT_NAME, VR::PN, "PatientName"),
        (tags::PATIENT_ID, VR::LO, "PatientID"),
        (tags::PATIENT_BIRTH_DATE, VR::DA, "PatientBirthDate"),
        (tags::PATIENT_SEX, VR::CS, "PatientSex"),
        (tags::STUDY_INSTANCE_UID, VR::UI, "StudyInstanceUID"),
        (tags::STUDY_DATE, VR::DA, "StudyDate"),
        (tags::STUDY_TIME, VR::TM, "StudyTime"),
        (tags::STUDY_ID, VR::SH, "StudyID"),
        (tags::ACCESSION_NUMBER, VR::SH, "AccessionNumber"),
        (
            tags::REFERRING_PHYSICIAN_NAME,
            VR::PN,
            "ReferringPhysicianName",
        ),
        (
            tags::POSITION_REFERENCE_INDICATOR,
            VR::LO,
            "PositionReferenceIndicator",
        ),
    ];
    let mut e: Vec<InMemElement> = copied
        .iter()
        .map(|&(tag, vr, key)| el(tag, vr, src.attr(key)))
        .collect();
    if !src.attr("StudyDescription").is_empty() {
        e.push(el(
            tags::STUDY_DESCRIPTION,
            VR::LO,
            src.attr("StudyDescription"),
        ));
    }
    let version = env!("CARGO_PKG_VERSION");
    e.extend([
        el(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
        strs(tags::IMAGE_TYPE, VR::CS, &["DERIVED", "PRIMARY"]),
        el(tags::SOP_CLASS_UID, VR::UI, SEG_SOP_CLASS_UID),
        el(tags::SOP_INSTANCE_UID, VR::UI, sop_uid.as_str()),
        el(tags::INSTANCE_CREATION_DATE, VR::DA, date.as_str()),
        el(tags::INSTANCE_CREATION_TIME, VR::TM, time.as_str()),
        el(tags::CONTENT_DATE, VR::DA, date.as_str()),
        el(tags::CONTENT_TIME, VR::TM, time.as_str()),
        el(tags::MODALITY, VR::CS, "SEG"),
        el(tags::MANUFACTURER, VR::LO, "voxflow"),
        el(tags::MANUFACTURER_MODEL_NAME, VR::LO, "voxflow"),
        el(tags::DEVICE_SERIAL_NUMBER, VR::LO, "none"),
        el(tags::SOFTWARE_VERSIONS, VR::LO, version),
        el(
            tags::SERIES_DESCRIPTION,
            VR::LO,
            "Liver and lesion segmentation (voxflow)",
        ),
        el(tags::SERIES_INSTANCE_UID, VR::UI, new_uid()),
        el(tags::SERIES_NUMBER, VR::IS, SERIES_NUMBER),
        el(tags::INSTANCE_NUMBER, VR::IS, "1"),
        el(tags::FRAME_OF_REFERENCE_UID, VR::UI, frame_of_reference),
        el(tags::CONTENT_LABEL, VR::CS, "LIVER_LESION"),
        el(tags::CONTENT_DESCRIPTION, VR::LO, "Liver and liver lesions"),
        el(tags::CONTENT_CREATOR_NAME, VR::PN, ""),
        el(tags::SEGMENTATION_TYPE, VR::CS, "BINARY"),
        el(
            tags::SEGMENTS_OVERLAP,
            VR::CS,
            if overlap { "YES" } else { "NO" },
        ),
        seq(
            tags::SEGMENT_SEQUENCE,
            vec![segment(1, false), segment(2, true)],
        ),
        seq(
            tags::REFERENCED_SERIES_SEQUENCE,
            vec![item(vec![
                el(
                    tags::SERIES_INSTANCE_UID,
                    VR::UI,
                    src.attr("SeriesInstanceUID"),
                ),
                seq(
                    tags::REFERENCED_INSTANCE_SEQUENCE,
                    src.dicom
                        .instances
                        .iter()
                        .map(
                            |Instance {
                                 sop_instance_uid: uid,
                                 ..
                             }| {
                                item(vec![
                                    el(
                                        tags::REFERENCED_SOP_CLASS_UID,
                                        VR::UI,
                                        src.attr("SOPClassUID"),
                                    ),
                                    el(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, uid.as_str()),
                                ])
                            },
                        )
                        .collect(),
                ),
            ])],
        ),
        seq(
            tags::DIMENSION_ORGANIZATION_SEQUENCE,
            vec![item(vec![el(
                tags::DIMENSION_ORGANIZATION_UID,
                VR::UI,
                dim_uid.as_str(),
            )])],
        ),
        seq(
            tags::DIMENSION_INDEX_SEQUENCE,
            vec![
                dimension(
                    tags::REFERENCED_SEGMENT_NUMBER,
                    tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                    "Segment Number",
                ),
                dimension(
                    tags::IMAGE_POSITION_PATIENT,
                    tags::PLANE_POSITION_SEQUENCE,
                    "Image Position Patient",
                ),
            ],
        ),
        seq(
            tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
            vec![item(vec![
                seq(
                    tags::PIXEL_MEASURES_SEQUENCE,
                    vec![item(vec![
                        strs(tags::PIXEL_SPACING, VR::DS, &[ds(dr), ds(dc)]),
                        el(tags::SLICE_THICKNESS, VR::DS, ds(thickness)),
                        el(tags::SPACING_BETWEEN_SLICES, VR::DS, ds(slice_step)),
                    ])],
                ),
                seq(
                    tags::PLANE_ORIENTATION_SEQUENCE,
                    vec![item(vec![strs(
                        tags::IMAGE_ORIENTATION_PATIENT,
                        VR::DS,
                        &src.dicom.orientation.map(ds),
                    )])],
                ),
            ])],
        ),
        seq(
            tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
            frames
                .iter()
                .map(|&(s, k)| frame_groups(src, s, k))
                .collect(),
        ),
        el(tags::SAMPLES_PER_PIXEL, VR::US, 1u16),
        el(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        el(tags::NUMBER_OF_FRAMES, VR::IS, frames.len().to_string()),
        el(tags::ROWS, VR::US, src.dicom.rows as u16),
        el(tags::COLUMNS, VR::US, src.dicom.columns as u16),
        el(tags::BITS_ALLOCATED, VR::US, 1u16),
        el(tags::BITS_STORED, VR::US, 1u16),
        el(tags::HIGH_BIT, VR::US, 0u16),
        el(tags::PIXEL_REPRESENTATION, VR::US, 0u16),
        el(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"),
        el(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::U8(SmallVec::from_vec(pixels)),
        ),
    ]);
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(SEG_SOP_CLASS_UID)
        .media_storage_sop_instance_uid(sop_uid.as_str())
        .transfer_syntax(EXPLICIT_VR_LITTLE_ENDIAN)
        .build()
        .map_err(|e| format!("DICOM file meta: {e}"))?;
    Ok(item(e).with_exact_meta(meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn empty_frames_are_omitted_unless_all_are_empty() {
        let mut l = Array3::<u8>::zeros((4, 2, 3));
        l[[1, 0, 0]] = 1;
        l[[2, 1, 2]] = 2;
        assert_eq!(frames(&l), vec![(1, 1), (1, 2), (2, 2)]);
        let empty = Array3::<u8>::zeros((2, 2, 3));
        assert_eq!(frames(&empty), vec![(1, 0), (1, 1), (2, 0), (2, 1)]);
    }

    #[test]
    fn labels_above_lesion_are_an_error() {
        let mut l = Array3::<u8>::from_elem((3, 2, 2), 2);
        assert!(check_values(&l).is_ok());
        l[[2, 1, 0]] = 3;
        assert!(check_values(&l)
            .unwrap_err()
            .starts_with("label value 3 in slice 2"));
    }

    #[test]
    fn frames_pack_without_padding_between_them() {
        // 3x3 frames: 9 bits each, so the second frame starts inside the second byte.
        let mut l = Array3::<u8>::zeros((2, 3, 3));
        l[[0, 0, 0]] = 2;
        l[[1, 2, 2]] = 1;
        let f = frames(&l);
        assert_eq!(f, vec![(1, 0), (1, 1), (2, 0)]);
        let p = pack_frames(&l, &f);
        // bits 0 (frame 1, pixel 0), 17 (frame 2, last pixel), 18 (frame 3, pixel 0)
        assert_eq!(p, vec![0b0000_0001, 0, 0b0000_0110, 0]);
    }

    #[test]
    fn decimal_strings_fit_16_characters() {
        assert_eq!(ds(0.0), "0");
        assert_eq!(ds(-172.5), "-172.5");
        assert_eq!(ds(f64::from(1.6_f32)), "1.60000002384186");
        assert_eq!(ds(-f64::from(0.743_f32)), "-0.7429999709129");
        for x in [1e-20, 123_456_789.123_456_78, -9.87e14, 1e300] {
            let s = ds(x);
            assert!(s.len() <= 16, "{s}");
            let back: f64 = s.parse().unwrap();
            assert!((back - x).abs() <= 1e-9 * x.abs().max(1e-11), "{x} -> {s}");
        }
    }

    #[test]
    fn uids_are_valid_and_new() {
        let (a, b) = (new_uid(), new_uid());
        assert_ne!(a, b);
        assert!(a.starts_with("2.25.") && a.len() <= 64);
        assert!(a[5..].chars().all(|c| c.is_ascii_digit()) && !a[5..].starts_with('0'));
    }
}
