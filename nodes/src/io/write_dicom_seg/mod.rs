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
use std::path::PathBuf;
use voxflow_runtime::decl::PortType;
use voxflow_runtime::node::check_slice;
use voxflow_runtime::stream::StreamType;
use voxflow_runtime::{
    BuildEnv, Header, Node, NodeCtx, NodeDecl, NodeError, NodeParams, ParamEnum, TypedKind, Volume,
};

mod frames;
mod object;
mod source;
pub use frames::*;
pub use object::*;
pub use source::*;

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
        Ok(Box::new(WriteDicomSegNode {
            path: p.path,
            skip: p.if_unavailable == IfUnavailable::Skip,
        }))
    }
}

struct WriteDicomSegNode {
    path: PathBuf,
    skip: bool,
}

impl WriteDicomSegNode {
    /// The source identifiers of `h`, or what to do when it has none: `Ok(None)` to skip.
    fn source(&self, ctx: &NodeCtx, h: &Header) -> Result<Option<SourceSeries>, NodeError> {
        if let Some(s) = SourceSeries::from_header(h)? {
            return Ok(Some(s));
        }
        let what = format!(
            "the input{} is not a DICOM series",
            crate::meta::source(h)
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

impl Node for WriteDicomSegNode {
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
