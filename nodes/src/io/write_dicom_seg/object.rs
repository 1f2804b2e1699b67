//! The DICOM Segmentation object: segments with their codes, per-frame groups, the dataset.

use super::*;

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

pub(super) fn el(tag: Tag, vr: VR, v: impl Into<PrimitiveValue>) -> InMemElement {
    DataElement::new(tag, vr, v.into())
}

pub(super) fn strs<S: ToString>(tag: Tag, vr: VR, v: &[S]) -> InMemElement {
    el(
        tag,
        vr,
        PrimitiveValue::Strs(v.iter().map(ToString::to_string).collect()),
    )
}

pub(super) fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

pub(super) fn item(elements: Vec<InMemElement>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

pub(super) fn code(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    item(vec![
        el(tags::CODE_VALUE, VR::SH, value),
        el(tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme),
        el(tags::CODE_MEANING, VR::LO, meaning),
    ])
}

pub(super) fn segment(number: u16, lesion: bool) -> InMemDicomObject {
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
    let liver = || code("10200004", "SCT", "Liver");
    let (category, kind) = if lesion {
        (
            code("49755003", "SCT", "Morphologically Abnormal Structure"),
            code("52988006", "SCT", "Lesion"),
        )
    } else {
        (code("91723000", "SCT", "Anatomical Structure"), liver())
    };
    e.push(seq(
        tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
        vec![category],
    ));
    e.push(seq(tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE, vec![kind]));
    if lesion {
        // A lesion's segment names the organ it lies in.
        e.push(seq(tags::ANATOMIC_REGION_SEQUENCE, vec![liver()]));
    }
    item(e)
}

/// The per-frame functional groups of frame `(segment, k)`.
pub(super) fn frame_groups(src: &SourceSeries, segment: u16, k: usize) -> InMemDicomObject {
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
