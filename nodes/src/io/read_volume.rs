//! `read_volume`: NIfTI file, DICOM series folder, or the built-in phantom.

use super::dicom_io::{self, DicomOptions};
use super::{nifti_io, phantom::Phantom};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::{SliceData, StreamType, VolumeData};
use voxflow_runtime::{
    BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeParams, ParamEnum, Slice, TypedKind, Volume,
};

pub struct ReadVolume;

const DOCS: &str = r#"
Reads a volume and streams it slice by slice (`k` = slice index).

- NIfTI-1 or NIfTI-2 (`.nii`, `.nii.gz`, any number of gzip members): integer and float scalar
  data types; 4D `x, y, z, class` float files are read as `prob`. The affine is kept exactly
  (sform if set, else qform). The header is checked before anything is allocated: dimensions,
  data type (complex, RGB and float128 are refused by name) and bitpix, `vox_offset` (honoured,
  and within the file), `scl_slope` (0 or NaN = no scaling, as the standard says), a finite affine
  with positive voxel sizes. Voxel values that the stream cannot hold are refused with the voxel
  named: non-finite intensities, non-integer or out-of-range labels, probabilities outside 0..1.
- Size: a volume larger than the voxel budget is refused before it is read: by default half of
  the memory the process may still use (MemAvailable, the cgroup limit, `ulimit -v`), or
  `--max-voxels N` / `VOXFLOW_MAX_VOXELS=N`.
- DICOM series: a folder of files. Files are grouped by SeriesInstanceUID (with several series,
  `series` picks one; the error lists them), sorted by ImagePositionPatient along the slice
  normal, rescaled with RescaleSlope/Intercept, and checked for uniform spacing. The affine is
  built as NIfTI converters do (DICOM LPS flipped to RAS). Voxel `(i, j, k)` = (column, row,
  slice). Patient and study identifiers, orientation, spacing and each slice's SOP Instance UID
  and ImagePositionPatient travel in the stream metadata (`dicom`; used by `write_dicom_seg`).
  - Pixel data: uncompressed (implicit/explicit VR, little or big endian), deflated, RLE,
    JPEG (baseline, extended, lossless), JPEG-LS (lossless and near-lossless) and JPEG 2000
    (lossless and lossy). Other transfer syntaxes are refused by name.
  - Every regular file directly in the folder must be a slice, except `DICOMDIR` and hidden
    files (names starting with `.`), which are ignored, and files whose extension names another
    format (`.txt .md .pdf .html .htm .xml .json .yaml .yml .csv .log .nii .gz .zip .png .jpg
    .jpeg`), which are passed over with a warning naming each; subfolders are not read. A bad file
    (empty, not DICOM, truncated or corrupt, without pixel data, or pixel data that does not
    decode) is an error that names it; with `skip_bad_files: true` each bad file is skipped
    with a warning naming it, and their paths are listed in the metadata
    (`dicom.skipped_files`). A skipped slice inside the series leaves a gap, which the spacing
    check refuses.
  - Refused, naming the file, whatever `skip_bad_files` says: more than one sample per pixel
    (RGB, YBR) or a PhotometricInterpretation other than MONOCHROME1/MONOCHROME2; multi-frame
    files (NumberOfFrames > 1); a missing, zero, negative or non-finite PixelSpacing; a missing
    or non-orthonormal ImageOrientationPatient; a missing ImagePositionPatient; a non-finite or
    zero RescaleSlope; slices whose Rows x Columns, orientation or pixel spacing differ from the
    others; two slices at one position; non-uniform slice spacing (the message names the two
    files around the gap); a volume over the voxel budget (checked before allocating).
  - MONOCHROME1 slices are read as their modality values like MONOCHROME2 ones (no inversion:
    inverting is a display step, and CT numbers stay Hounsfield units).
- `phantom:` a synthetic abdominal CT (see `phantom:small`, `phantom:NIxNJxNK`, `,seed=N`);
  with `as: label` it gives the phantom's ground truth.

`as: auto` picks `label` for uint8 files, `prob` for 4D float files and `image` otherwise; a 4D
integer file (e.g. a time series) is refused, and so is a uint8 file with more than 128 distinct
values (an 8-bit image, not a label map: set `as: image` or `as: label`).
"#;

/// `as` param: the stream type to read a file as.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, ParamEnum)]
#[serde(rename_all = "snake_case")]
pub enum ReadAs {
    Auto,
    Image,
    Label,
    Prob,
}

/// Params of `read_volume`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct ReadVolumeParams {
    /// NIfTI file, DICOM folder, or `phantom:`
    pub path: PathBuf,
    /// stream type to read the file as
    #[param(default = ReadAs::Auto)]
    pub r#as: ReadAs,
    /// SeriesInstanceUID to read when a DICOM folder holds several
    pub series: Option<String>,
    /// DICOM: skip bad files (empty, not DICOM, truncated, no or undecodable pixels) with a warning naming each
    #[param(default = false)]
    pub skip_bad_files: bool,
}

impl TypedKind for ReadVolume {
    type Params = ReadVolumeParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            "read_volume",
            "Read a NIfTI file, a DICOM series folder or the built-in phantom",
        )
        .docs(DOCS)
        .output("out", PortType::FromParam("as".into()), "the volume")
    }

    fn create(&self, p: ReadVolumeParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        let want = match p.r#as {
            ReadAs::Auto => None,
            ReadAs::Image => Some(StreamType::Image),
            ReadAs::Label => Some(StreamType::Label),
            ReadAs::Prob => Some(StreamType::Prob),
        };
        // The checker keeps values with a scheme (`phantom:`) as written.
        let path = p.path.to_string_lossy();
        if path.starts_with("phantom:") {
            let phantom = Phantom::parse(&path)?;
            if want == Some(StreamType::Prob) {
                return Err(NodeError::msg(
                    "the phantom has no prob volume; use `as: image` or `as: label`",
                ));
            }
            return Ok(Box::new(PhantomSource {
                phantom,
                label: want == Some(StreamType::Label),
            }));
        }
        if !p.path.exists() {
            return Err(NodeError::msg(format!(
                "input {} does not exist",
                p.path.display()
            )));
        }
        Ok(Box::new(FileSource {
            path: p.path,
            want,
            series: p.series,
            skip_bad_files: p.skip_bad_files,
        }))
    }
}

struct PhantomSource {
    phantom: Phantom,
    label: bool,
}

impl Node for PhantomSource {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let ty = if self.label {
            StreamType::Label
        } else {
            StreamType::Image
        };
        let n = self.phantom.shape[0];
        ctx.set_total(n);
        ctx.send_header("out", self.phantom.header(ty))?;
        for k in 0..n {
            let data = if self.label {
                SliceData::Label(self.phantom.label_slice(k))
            } else {
                SliceData::Image(self.phantom.image_slice(k))
            };
            ctx.send_slice("out", Slice::new(k, data))?;
            ctx.tick();
        }
        ctx.end("out")
    }
}

struct FileSource {
    path: PathBuf,
    want: Option<StreamType>,
    series: Option<String>,
    skip_bad_files: bool,
}

/// Reads a NIfTI file or DICOM folder into a volume (also used by other nodes and commands);
/// any bad DICOM file is an error.
pub fn read_any(
    path: &Path,
    want: Option<StreamType>,
    series: Option<&str>,
) -> Result<Volume, String> {
    let dicom = DicomOptions {
        series,
        skip_bad_files: false,
    };
    read_any_with(path, want, &dicom)
}

/// `read_any` with the DICOM options spelt out.
pub fn read_any_with(
    path: &Path,
    want: Option<StreamType>,
    dicom: &DicomOptions,
) -> Result<Volume, String> {
    if path.is_dir() {
        let s = dicom_io::read_series_with(path, dicom)?;
        let mut header = s.header;
        crate::meta::set_source(&mut header, path);
        let mut v = match want {
            None | Some(StreamType::Image) => Volume::new(header, VolumeData::Image(s.voxels)),
            Some(StreamType::Label) => {
                if s.voxels
                    .iter()
                    .any(|&x| !(0.0..=255.0).contains(&x) || x.fract() != 0.0)
                {
                    return Err(format!(
                        "{}: label volumes need integer values in 0..255",
                        path.display()
                    ));
                }
                let h = header.with_type(StreamType::Label, 1);
                Volume::new(h, VolumeData::Label(s.voxels.mapv(|x| x as u8)))
            }
            Some(StreamType::Prob) => {
                return Err(format!(
                    "{}: a DICOM series cannot be read as prob",
                    path.display()
                ))
            }
        };
        for (k, (uid, file)) in s.slices.iter().enumerate() {
            let m = v.slice_meta[k].get_or_insert_with(Default::default);
            m.insert("SOPInstanceUID".into(), uid.clone().into());
            m.insert("file".into(), file.display().to_string().into());
        }
        Ok(v)
    } else {
        let mut n = nifti_io::read_nifti(path, want)?;
        if want.is_none() {
            if let VolumeData::Label(l) = &n.data {
                refuse_image_like_label(l, path)?;
            }
        }
        crate::meta::set_source(&mut n.header, path);
        Ok(Volume::new(n.header, n.data))
    }
}

/// Most distinct values `as: auto` accepts in a uint8 file: label maps have few classes (117 in
/// TotalSegmentator's), an 8-bit image (a windowed CT, a screenshot) uses most of 0..255.
const AUTO_LABEL_MAX_VALUES: usize = 128;

/// Refuses a uint8 volume that `as: auto` took for a label but that holds more distinct values
/// than a label map has.
fn refuse_image_like_label(l: &ndarray::Array3<u8>, path: &Path) -> Result<(), String> {
    let mut seen = [false; 256];
    for &x in l {
        seen[x as usize] = true;
    }
    let n = seen.iter().filter(|&&s| s).count();
    if n > AUTO_LABEL_MAX_VALUES {
        return Err(format!(
            "{}: 8-bit voxels with {n} distinct values look like an image, not a label map \
             (`as: auto` reads uint8 files as labels); set `as: image` to read it as an image, \
             or `as: label` if it is a label map",
            path.display()
        ));
    }
    Ok(())
}

impl Node for FileSource {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let dicom = DicomOptions {
            series: self.series.as_deref(),
            skip_bad_files: self.skip_bad_files,
        };
        let v = read_any_with(&self.path, self.want, &dicom)?;
        ctx.set_total(v.header.num_slices());
        ctx.send_header("out", v.header.clone())?;
        for k in 0..v.header.num_slices() {
            let mut s = Slice::new(k, v.slice(k));
            if let Some(m) = &v.slice_meta[k] {
                s.meta = m.clone();
            }
            ctx.send_slice("out", s)?;
            ctx.tick();
        }
        ctx.end("out")
    }
}
