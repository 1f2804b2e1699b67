//! `read_volume`: NIfTI file, DICOM series folder, or the built-in phantom.

use super::{dicom_io, nifti_io, phantom::Phantom};
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

- NIfTI (`.nii`, `.nii.gz`): any scalar data type; 4D `x, y, z, class` files are read as `prob`.
  The affine is kept exactly (sform if set, else qform).
- DICOM series: a folder of files. Files are grouped by SeriesInstanceUID (with several series,
  `series` picks one; the error lists them), sorted by ImagePositionPatient along the slice
  normal, rescaled with RescaleSlope/Intercept, and checked for uniform spacing. The affine is
  built as NIfTI converters do (DICOM LPS flipped to RAS). Voxel `(i, j, k)` = (column, row,
  slice). Patient and study identifiers, orientation, spacing and each slice's SOP Instance UID
  and ImagePositionPatient travel in the stream metadata (`dicom`; used by `write_dicom_seg`).
- `phantom:` a synthetic abdominal CT (see `phantom:small`, `phantom:NIxNJxNK`, `,seed=N`);
  with `as: label` it gives the phantom's ground truth.

`as: auto` picks `label` for uint8 files, `prob` for 4D files and `image` otherwise.
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
}

/// Reads a NIfTI file or DICOM folder into a volume (also used by other nodes and commands).
pub fn read_any(
    path: &Path,
    want: Option<StreamType>,
    series: Option<&str>,
) -> Result<Volume, String> {
    if path.is_dir() {
        let s = dicom_io::read_series(path, series)?;
        let mut header = s.header;
        header
            .meta
            .insert("source".into(), path.display().to_string().into());
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
        n.header
            .meta
            .insert("source".into(), path.display().to_string().into());
        Ok(Volume::new(n.header, n.data))
    }
}

impl Node for FileSource {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let v = read_any(&self.path, self.want, self.series.as_deref())?;
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
