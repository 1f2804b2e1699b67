//! NIfTI orientation: the affine from sform / qform and back to a quaternion.

use super::Affine;
use nifti::NiftiHeader;

/// Voxel-to-world matrix of a header: sform if set, else qform, else the voxel sizes.
pub fn header_affine(h: &NiftiHeader) -> Affine {
    xform_affine(&Xform {
        qform_code: h.qform_code.into(),
        sform_code: h.sform_code.into(),
        quatern: [h.quatern_b, h.quatern_c, h.quatern_d].map(f64::from),
        qoffset: [h.quatern_x, h.quatern_y, h.quatern_z].map(f64::from),
        srow: [h.srow_x, h.srow_y, h.srow_z].map(|r| r.map(f64::from)),
        pixdim: [h.pixdim[0], h.pixdim[1], h.pixdim[2], h.pixdim[3]].map(f64::from),
    })
}

/// The orientation fields of a NIfTI-1 or NIfTI-2 header.
#[derive(Clone, Debug)]
pub(super) struct Xform {
    pub(super) qform_code: i32,
    pub(super) sform_code: i32,
    pub(super) quatern: [f64; 3],
    pub(super) qoffset: [f64; 3],
    pub(super) srow: [[f64; 4]; 3],
    pub(super) pixdim: [f64; 4],
}

pub(super) fn xform_affine(h: &Xform) -> Affine {
    let mut a = [[0.0; 4]; 4];
    a[3][3] = 1.0;
    if h.sform_code > 0 {
        for (r, row) in h.srow.iter().enumerate() {
            a[r] = *row;
        }
        return a;
    }
    let dx = h.pixdim[1];
    let dy = h.pixdim[2];
    let mut dz = h.pixdim[3];
    if h.qform_code > 0 {
        let [b, c, d] = h.quatern;
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
        a[0][3] = h.qoffset[0];
        a[1][3] = h.qoffset[1];
        a[2][3] = h.qoffset[2];
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
pub(super) fn affine_to_quatern(a: &Affine) -> (f64, f64, f64, f64) {
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
