//! NIfTI reading and writing with exact geometry.

use ndarray::{Array3, Array4, ArrayD, Axis, Ix3, Ix4};
use nifti::writer::WriterOptions;
use nifti::{IntoNdArray, NiftiHeader, NiftiObject, NiftiType, ReaderOptions};
use std::path::Path;
use voxflow_runtime::stream::{Header, StreamType, VolumeData};

pub type Affine = [[f64; 4]; 4];

/// Voxel-to-world matrix of a header: sform if set, else qform, else the voxel sizes.
pub fn header_affine(h: &NiftiHeader) -> Affine {
    let mut a = [[0.0; 4]; 4];
    a[3][3] = 1.0;
    if h.sform_code > 0 {
        for (r, row) in [h.srow_x, h.srow_y, h.srow_z].iter().enumerate() {
            for c in 0..4 {
                a[r][c] = row[c] as f64;
            }
        }
        return a;
    }
    let dx = h.pixdim[1] as f64;
    let dy = h.pixdim[2] as f64;
    let mut dz = h.pixdim[3] as f64;
    if h.qform_code > 0 {
        let (b, c, d) = (h.quatern_b as f64, h.quatern_c as f64, h.quatern_d as f64);
        let aa = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        dz *= qfac;
        let r = [
            [
                aa * aa + b * b - c * c - d * d,
                2.0 * (b * c - aa * d),
                2.0 * (b * d + aa * c),
            ],
            [
                2.0 * (b * c + aa * d),
                aa * aa + c * c - b * b - d * d,
                2.0 * (c * d - aa * b),
            ],
            [
                2.0 * (b * d - aa * c),
                2.0 * (c * d + aa * b),
                aa * aa + d * d - c * c - b * b,
            ],
        ];
        let s = [dx, dy, dz];
        for i in 0..3 {
            for j in 0..3 {
                a[i][j] = r[i][j] * s[j];
            }
        }
        a[0][3] = h.quatern_x as f64;
        a[1][3] = h.quatern_y as f64;
        a[2][3] = h.quatern_z as f64;
        return a;
    }
    a[0][0] = dx;
    a[1][1] = dy;
    a[2][2] = dz;
    a
}

/// Column norms of the affine: voxel sizes along i, j, k.
pub fn affine_voxel_sizes(a: &Affine) -> [f64; 3] {
    let n = |c: usize| (0..3).map(|r| a[r][c] * a[r][c]).sum::<f64>().sqrt();
    [n(0), n(1), n(2)]
}

/// Quaternion form of an affine (as nifti_mat44_to_quatern): (b, c, d, qfac).
fn affine_to_quatern(a: &Affine) -> (f64, f64, f64, f64) {
    let s = affine_voxel_sizes(a);
    let mut r = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            r[i][j] = if s[j] > 0.0 {
                a[i][j] / s[j]
            } else {
                f64::from(u8::from(i == j))
            };
        }
    }
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det < 0.0 { -1.0 } else { 1.0 };
    if det < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
    }
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (aa, b, c, d);
    if trace > 0.5 {
        aa = 0.5 * trace.sqrt();
        b = 0.25 * (r[2][1] - r[1][2]) / aa;
        c = 0.25 * (r[0][2] - r[2][0]) / aa;
        d = 0.25 * (r[1][0] - r[0][1]) / aa;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            let bb = 0.5 * xd.sqrt();
            b = bb;
            c = 0.25 * (r[0][1] + r[1][0]) / bb;
            d = 0.25 * (r[0][2] + r[2][0]) / bb;
            aa = 0.25 * (r[2][1] - r[1][2]) / bb;
        } else if yd > 1.0 {
            let cc = 0.5 * yd.sqrt();
            c = cc;
            b = 0.25 * (r[0][1] + r[1][0]) / cc;
            d = 0.25 * (r[1][2] + r[2][1]) / cc;
            aa = 0.25 * (r[0][2] - r[2][0]) / cc;
        } else {
            let dd = 0.5 * zd.sqrt();
            d = dd;
            b = 0.25 * (r[0][2] + r[2][0]) / dd;
            c = 0.25 * (r[1][2] + r[2][1]) / dd;
            aa = 0.25 * (r[1][0] - r[0][1]) / dd;
        }
        if aa < 0.0 {
            return (-b, -c, -d, qfac);
        }
    }
    (b, c, d, qfac)
}

/// What a NIfTI file holds, in voxflow's layout.
pub struct NiftiVolume {
    pub header: Header,
    pub data: VolumeData,
    pub dtype: NiftiType,
}

/// Reads a 3D (or 4D x,y,z,c) NIfTI file. `want` forces the stream type; `None` picks label for
/// uint8, prob for 4D, image otherwise.
pub fn read_nifti(path: &Path, want: Option<StreamType>) -> Result<NiftiVolume, String> {
    let obj = ReaderOptions::new()
        .read_file(path)
        .map_err(|e| format!("cannot read NIfTI file {}: {e}", path.display()))?;
    let h = obj.header().clone();
    let dtype = h
        .data_type()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let ndim = h.dim[0] as usize;
    let dims: Vec<usize> = (1..=ndim).map(|d| h.dim[d] as usize).collect();
    let ty = match want {
        Some(t) => t,
        None if ndim == 4 && dims[3] > 1 => StreamType::Prob,
        None if dtype == NiftiType::Uint8 => StreamType::Label,
        None => StreamType::Image,
    };
    let affine = header_affine(&h);
    let vs = affine_voxel_sizes(&affine);
    let arr: ArrayD<f32> = obj
        .into_volume()
        .into_ndarray::<f32>()
        .map_err(|e| format!("cannot decode voxels of {}: {e}", path.display()))?;
    let (shape, channels, data) = match ty {
        StreamType::Prob => {
            if arr.ndim() != 4 {
                return Err(format!(
                    "{}: a prob volume needs 4 dimensions (x, y, z, class), the file has {}",
                    path.display(),
                    arr.ndim()
                ));
            }
            let a4 = arr
                .into_dimensionality::<Ix4>()
                .map_err(|e| e.to_string())?;
            // (i, j, k, c) -> (k, c, j, i)
            let a = a4
                .permuted_axes([2, 3, 1, 0])
                .as_standard_layout()
                .into_owned();
            let sh = a.shape().to_vec();
            (
                [sh[0], sh[2], sh[3]],
                sh[1],
                VolumeData::Prob(a.into_dimensionality::<Ix4>().map_err(|e| e.to_string())?),
            )
        }
        _ => {
            let a3 = match arr.ndim() {
                3 => arr
                    .into_dimensionality::<Ix3>()
                    .map_err(|e| e.to_string())?,
                4 if arr.shape()[3] == 1 => arr
                    .index_axis_move(Axis(3), 0)
                    .into_dimensionality::<Ix3>()
                    .map_err(|e| e.to_string())?,
                2 => arr
                    .insert_axis(Axis(2))
                    .into_dimensionality::<Ix3>()
                    .map_err(|e| e.to_string())?,
                n => {
                    return Err(format!(
                        "{}: expected a 3D volume, the file has {n} dimensions",
                        path.display()
                    ))
                }
            };
            let a: Array3<f32> = a3.reversed_axes().as_standard_layout().into_owned();
            let sh = a.shape().to_vec();
            let data = if ty == StreamType::Label {
                if a.iter()
                    .any(|&v| !(0.0..=255.0).contains(&v) || v.fract() != 0.0)
                {
                    return Err(format!(
                        "{}: label volumes need integer values in 0..255",
                        path.display()
                    ));
                }
                VolumeData::Label(a.mapv(|v| v as u8))
            } else {
                VolumeData::Image(a)
            };
            ([sh[0], sh[1], sh[2]], 1, data)
        }
    };
    let mut header = Header::new(ty, shape, [vs[2], vs[1], vs[0]]);
    header.affine = affine;
    header.channels = channels;
    // The raw orientation fields, for nodes that must reproduce ITK's reading of the file bit for
    // bit (`n4`: voxflow_n4::NiftiXform).
    header.meta.insert(
        "nifti_xform".into(),
        serde_json::json!({
            "qform_code": h.qform_code,
            "sform_code": h.sform_code,
            "quatern": [h.quatern_b, h.quatern_c, h.quatern_d],
            "qoffset": [h.quatern_x, h.quatern_y, h.quatern_z],
            "srow": [h.srow_x, h.srow_y, h.srow_z],
            "pixdim": [h.pixdim[0], h.pixdim[1], h.pixdim[2], h.pixdim[3]],
            "xyzt_units": h.xyzt_units,
        }),
    );
    Ok(NiftiVolume {
        header,
        data,
        dtype,
    })
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
