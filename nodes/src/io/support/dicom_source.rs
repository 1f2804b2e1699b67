//! The DICOM series a stream was read from, as one typed record: `read_volume` stores it in the
//! header metadata under `dicom`; the nodes that refer back to the source (`write_dicom_seg`,
//! `report`) read it from there. The JSON keeps DICOM's keywords.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use voxflow_runtime::stream::Header;

/// The `dicom` metadata of a stream read from a DICOM series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DicomSource {
    /// Row and column direction cosines (LPS).
    #[serde(rename = "ImageOrientationPatient")]
    pub orientation: [f64; 6],
    /// Row spacing, column spacing (mm).
    pub pixel_spacing: [f64; 2],
    pub rows: usize,
    pub columns: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice_thickness: Option<f64>,
    /// One per slice, in slice order `k`.
    #[serde(rename = "instances")]
    pub instances: Vec<Instance>,
    /// Files passed over with `skip_bad_files: true`.
    #[serde(
        rename = "skipped_files",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub skipped_files: Vec<String>,
    /// Patient, study and series identifiers of the first file, by DICOM keyword (PatientID,
    /// StudyInstanceUID, SeriesInstanceUID, SOPClassUID, FrameOfReferenceUID, ...), where present.
    #[serde(flatten)]
    pub identifiers: BTreeMap<String, String>,
}

/// One slice of the series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    #[serde(rename = "SOPInstanceUID")]
    pub sop_instance_uid: String,
    /// LPS, mm.
    #[serde(rename = "ImagePositionPatient")]
    pub position: [f64; 3],
}

/// The metadata key.
const KEY: &str = "dicom";

impl DicomSource {
    /// `Ok(None)` when the stream carries no DICOM source (NIfTI, phantom); an error when its
    /// `dicom` entry is not a valid record.
    pub fn from_header(h: &Header) -> Result<Option<Self>, String> {
        let Some(v) = h.meta.get(KEY) else {
            return Ok(None);
        };
        serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| format!("the stream's DICOM metadata is not valid: {e}"))
    }

    /// Stores the record in `h`'s metadata.
    pub fn store(&self, h: &mut Header) {
        let v = serde_json::to_value(self).expect("plain data serialises");
        h.meta.insert(KEY.into(), v);
    }

    /// An identifier by DICOM keyword; empty when the source has none.
    pub fn identifier(&self, keyword: &str) -> &str {
        self.identifiers.get(keyword).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxflow_runtime::stream::StreamType;

    fn source() -> DicomSource {
        DicomSource {
            orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            pixel_spacing: [0.7, 0.8],
            rows: 4,
            columns: 5,
            slice_thickness: Some(2.5),
            instances: vec![Instance {
                sop_instance_uid: "1.2.3".into(),
                position: [0.0, 1.0, 2.0],
            }],
            skipped_files: Vec::new(),
            identifiers: [("StudyInstanceUID".to_string(), "9.8".to_string())].into(),
        }
    }

    #[test]
    fn round_trips_with_dicom_keywords() {
        let mut h = Header::new(StreamType::Image, [1, 4, 5], [2.5, 0.7, 0.8]);
        source().store(&mut h);
        let v = &h.meta[KEY];
        assert_eq!(v["StudyInstanceUID"], "9.8");
        assert_eq!(v["instances"][0]["SOPInstanceUID"], "1.2.3");
        assert_eq!(v["PixelSpacing"][1], 0.8);
        assert!(v.get("skipped_files").is_none());
        let back = DicomSource::from_header(&h).unwrap().unwrap();
        assert_eq!(back, source());
        assert_eq!(back.identifier("StudyInstanceUID"), "9.8");
        assert_eq!(back.identifier("PatientID"), "");
    }

    #[test]
    fn absent_is_none_and_broken_is_an_error() {
        let mut h = Header::new(StreamType::Image, [1, 4, 5], [2.5, 0.7, 0.8]);
        assert_eq!(DicomSource::from_header(&h), Ok(None));
        h.meta.insert(KEY.into(), serde_json::json!({"Rows": 4}));
        let e = DicomSource::from_header(&h).unwrap_err();
        assert!(e.contains("DICOM metadata"), "{e}");
    }
}
