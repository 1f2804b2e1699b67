//! The source series a segmentation refers to, from the `dicom` stream metadata.

use super::*;

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
            folder: crate::meta::source(h).unwrap_or("").to_string(),
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
