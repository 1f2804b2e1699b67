//! NIfTI reading and writing with exact geometry.

use flate2::bufread::MultiGzDecoder;
use ndarray::Array4;
use nifti::writer::WriterOptions;
use nifti::NiftiHeader;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use voxflow_runtime::stream::{Header, StreamType, VolumeData};

pub type Affine = [[f64; 4]; 4];
mod affine;
mod header;
mod voxels;

use affine::*;
pub use affine::{affine_voxel_sizes, header_affine};
use header::*;
use voxels::*;

/// What a NIfTI file holds, in voxflow's layout.
pub struct NiftiVolume {
    pub header: Header,
    pub data: VolumeData,
}

/// Reads a 2D, 3D or 4D (x, y, z, class) NIfTI-1 or NIfTI-2 file, plain or gzipped (any number
/// of gzip members). `want` forces the stream type; `None` picks label for uint8, prob for 4D,
/// image otherwise. The header is checked before anything is allocated; every refusal names the
/// file and says what is wrong.
pub fn read_nifti(path: &Path, want: Option<StreamType>) -> Result<NiftiVolume, String> {
    let file = std::fs::File::open(path).map_err(|e| {
        format!(
            "cannot open NIfTI file {}: {}",
            path.display(),
            io_words(&e)
        )
    })?;
    let len = file.metadata().ok().map(|m| m.len());
    read_nifti_from(file, len, path, want)
}

/// [`read_nifti`] on any byte source (`len`: its size when known, to check it before reading);
/// `path` only names the source in messages.
pub fn read_nifti_from(
    source: impl Read,
    len: Option<u64>,
    path: &Path,
    want: Option<StreamType>,
) -> Result<NiftiVolume, String> {
    let name = path.display();
    let mut buffered = BufReader::with_capacity(1 << 16, source);
    let gzipped = buffered
        .fill_buf()
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .map_err(|e| format!("cannot read {name}: {}", io_words(&e)))?;
    let (mut reader, len): (Box<dyn Read>, Option<u64>) = if gzipped {
        (Box::new(MultiGzDecoder::new(buffered)), None)
    } else {
        (Box::new(buffered), len)
    };
    let raw = read_header(&mut reader, path)?;
    let plan = plan_read(&raw, want, path)?;

    // Skip the extensions up to vox_offset.
    let skip = raw.vox_offset - raw.header_size;
    let skipped = std::io::copy(&mut (&mut reader).take(skip), &mut std::io::sink())
        .map_err(|e| format!("cannot read {name}: {}", io_words(&e)))?;
    if skipped < skip {
        return Err(format!(
            "{name}: the file ends at byte {} before the voxel data, which vox_offset puts at \
             byte {}",
            raw.header_size + skipped,
            raw.vox_offset
        ));
    }
    let nbytes = plan.voxels as u64 * raw.dtype.size;
    if let Some(len) = len {
        if len < raw.vox_offset + nbytes {
            return Err(truncated(
                path,
                &raw,
                nbytes,
                len.saturating_sub(raw.vox_offset),
            ));
        }
    }
    let data = read_voxels(&mut reader, &raw, &plan, path)?;

    let affine = xform_affine(&raw.xform);
    let vs = affine_voxel_sizes(&affine);
    let [nx, ny, nz, nt] = raw.dims;
    let mut header = Header::new(plan.ty, [nz, ny, nx], [vs[2], vs[1], vs[0]]);
    header.affine = affine;
    header.channels = if plan.ty == StreamType::Prob { nt } else { 1 };
    // The raw orientation fields, for nodes that must reproduce ITK's reading of the file bit for
    // bit (`n4`: voxflow_n4::NiftiXform). NIfTI-1 fields are float32 and written as such.
    let v1 = raw.version == 1;
    let num = |x: f64| {
        if v1 {
            serde_json::json!(x as f32)
        } else {
            serde_json::json!(x)
        }
    };
    let x = &raw.xform;
    header.meta.insert(
        "nifti_xform".into(),
        serde_json::json!({
            "qform_code": x.qform_code,
            "sform_code": x.sform_code,
            "quatern": x.quatern.map(num),
            "qoffset": x.qoffset.map(num),
            "srow": x.srow.map(|r| r.map(num)),
            "pixdim": x.pixdim.map(num),
            "xyzt_units": raw.xyzt_units,
        }),
    );
    Ok(NiftiVolume { header, data })
}

/// Writes a volume with the header's affine in both sform and qform. Labels as uint8,
/// images and probabilities as float32 (probabilities 4D x, y, z, class).
pub fn write_nifti(path: &Path, header: &Header, data: &VolumeData) -> Result<(), String> {
    let a = &header.affine;
    let (b, c, d, qfac) = affine_to_quatern(a);
    let vs = affine_voxel_sizes(a);
    let h = NiftiHeader {
        sform_code: 1,
        qform_code: 1,
        srow_x: [
            a[0][0] as f32,
            a[0][1] as f32,
            a[0][2] as f32,
            a[0][3] as f32,
        ],
        srow_y: [
            a[1][0] as f32,
            a[1][1] as f32,
            a[1][2] as f32,
            a[1][3] as f32,
        ],
        srow_z: [
            a[2][0] as f32,
            a[2][1] as f32,
            a[2][2] as f32,
            a[2][3] as f32,
        ],
        quatern_b: b as f32,
        quatern_c: c as f32,
        quatern_d: d as f32,
        quatern_x: a[0][3] as f32,
        quatern_y: a[1][3] as f32,
        quatern_z: a[2][3] as f32,
        pixdim: [
            qfac as f32,
            vs[0] as f32,
            vs[1] as f32,
            vs[2] as f32,
            1.0,
            1.0,
            1.0,
            1.0,
        ],
        xyzt_units: 2, // mm
        ..NiftiHeader::default()
    };
    let w = WriterOptions::new(path).reference_header(&h);
    let r = match data {
        VolumeData::Label(v) => w.write_nifti(&v.view().reversed_axes()),
        VolumeData::Image(v) => w.write_nifti(&v.view().reversed_axes()),
        VolumeData::Prob(v) => {
            // (k, c, j, i) -> (i, j, k, c)
            let p: Array4<f32> = v.view().permuted_axes([3, 2, 0, 1]).to_owned();
            w.write_nifti(&p)
        }
    };
    r.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quaternion_round_trip() {
        let a: Affine = [
            [-0.7, 0.0, 0.0, 10.0],
            [0.0, -0.8, 0.0, -5.0],
            [0.0, 0.0, 2.0, 3.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let (b, c, d, qfac) = affine_to_quatern(&a);
        let h = NiftiHeader {
            sform_code: 0,
            qform_code: 1,
            quatern_b: b as f32,
            quatern_c: c as f32,
            quatern_d: d as f32,
            quatern_x: 10.0,
            quatern_y: -5.0,
            quatern_z: 3.0,
            pixdim: [qfac as f32, 0.7, 0.8, 2.0, 1.0, 1.0, 1.0, 1.0],
            ..NiftiHeader::default()
        };
        let back = header_affine(&h);
        for r in 0..4 {
            for c in 0..4 {
                assert!((back[r][c] - a[r][c]).abs() < 1e-5, "{back:?}");
            }
        }
    }
}
