//! `read_volume`: NIfTI file, DICOM series folder, or the built-in phantom.

use super::{dicom_io, nifti_io, phantom::Phantom};
use std::path::{Path, PathBuf};
use voxflow_runtime::decl::{ParamType, PortType};
use voxflow_runtime::stream::{SliceData, StreamType, VolumeData};
use voxflow_runtime::{
    BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeKind, Params, Slice, Volume,
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
- `phantom:` a synthetic abdominal CT (see `phantom:small`, `phantom:NIxNJxNK`, `,seed=N`);
  with `as: label` it gives the phantom's ground truth.

`as: auto` picks `label` for uint8 files, `prob` for 4D float files and `image` otherwise; a 4D
integer file (e.g. a time series) is refused.
"#;

impl NodeKind for ReadVolume {
    fn decl(&self) -> NodeDecl {
        NodeDecl::new(
            "read_volume",
            "Read a NIfTI file, a DICOM series folder or the built-in phantom",
        )
        .docs(DOCS)
        .output("out", PortType::FromParam("as".into()), "the volume")
        .required(
            "path",
            ParamType::Path,
            "NIfTI file, DICOM folder, or `phantom:`",
        )
        .param(
            "as",
            ParamType::Enum(vec![
                "auto".into(),
                "image".into(),
                "label".into(),
                "prob".into(),
            ]),
            "auto",
            "stream type to read the file as",
        )
        .optional(
            "series",
            ParamType::Str,
            "SeriesInstanceUID to read when a DICOM folder holds several",
        )
    }

    fn build(&self, params: &Params, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        let path = params.str("path")?.to_string();
        let want = StreamType::parse(params.str("as")?);
        if path.starts_with("phantom:") {
            let p = Phantom::parse(&path)?;
            if want == Some(StreamType::Prob) {
                return Err(NodeError::msg(
                    "the phantom has no prob volume; use `as: image` or `as: label`",
                ));
            }
            return Ok(Box::new(PhantomSource {
                phantom: p,
                label: want == Some(StreamType::Label),
            }));
        }
        let p = PathBuf::from(&path);
        if !p.exists() {
            return Err(NodeError::msg(format!(
                "input {} does not exist",
                p.display()
            )));
        }
        Ok(Box::new(FileSource {
            path: p,
            want,
            series: params.opt_str("series")?.map(String::from),
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
