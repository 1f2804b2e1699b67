//! The NIfTI-1 / NIfTI-2 header: read, checked field by field before anything is allocated.

use super::affine::*;
use super::voxels::{io_words, read_full};
use std::io::Read;
use std::path::Path;

/// A NIfTI data type voxflow reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Dtype {
    pub(super) code: i16,
    pub(super) name: &'static str,
    pub(super) size: u64,
}

pub(super) const DTYPES: [Dtype; 10] = [
    Dtype {
        code: 2,
        name: "uint8",
        size: 1,
    },
    Dtype {
        code: 4,
        name: "int16",
        size: 2,
    },
    Dtype {
        code: 8,
        name: "int32",
        size: 4,
    },
    Dtype {
        code: 16,
        name: "float32",
        size: 4,
    },
    Dtype {
        code: 64,
        name: "float64",
        size: 8,
    },
    Dtype {
        code: 256,
        name: "int8",
        size: 1,
    },
    Dtype {
        code: 512,
        name: "uint16",
        size: 2,
    },
    Dtype {
        code: 768,
        name: "uint32",
        size: 4,
    },
    Dtype {
        code: 1024,
        name: "int64",
        size: 8,
    },
    Dtype {
        code: 1280,
        name: "uint64",
        size: 8,
    },
];

/// Data types of the standard that voxflow refuses, by name.
pub(super) fn unsupported_dtype(code: i16) -> Option<&'static str> {
    Some(match code {
        0 => "unknown (0)",
        1 => "binary (1 bit)",
        32 => "complex64",
        128 => "RGB24",
        1536 => "float128",
        1792 => "complex128",
        2048 => "complex256",
        2304 => "RGBA32",
        _ => return None,
    })
}

/// The header fields voxflow uses, checked.
pub(super) struct RawHeader {
    pub(super) version: u8,
    pub(super) header_size: u64,
    pub(super) big_endian: bool,
    /// x, y, z, t (1 where the file has fewer dimensions).
    pub(super) dims: [usize; 4],
    pub(super) ndim: usize,
    pub(super) dtype: Dtype,
    pub(super) vox_offset: u64,
    /// `(slope, intercept)` when the file asks for scaling.
    pub(super) scale: Option<(f32, f32)>,
    pub(super) xform: Xform,
    pub(super) xyzt_units: i32,
}

/// Field reader over a header's bytes in the file's byte order.
pub(super) struct Fields<'a> {
    pub(super) b: &'a [u8],
    pub(super) be: bool,
}

impl Fields<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[at..at + N]);
        if self.be {
            a.reverse();
        }
        a
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.bytes(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.bytes(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.bytes(at))
    }
    fn f32(&self, at: usize) -> f64 {
        f32::from_le_bytes(self.bytes(at)).into()
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.bytes(at))
    }
}

/// The raw numbers of a header, before checks.
pub(super) struct Parsed {
    pub(super) dim: [i64; 8],
    pub(super) datatype: i16,
    pub(super) bitpix: i16,
    pub(super) vox_offset: f64,
    pub(super) scl_slope: f64,
    pub(super) scl_inter: f64,
    pub(super) xform: Xform,
    pub(super) xyzt_units: i32,
}

pub(super) fn read_header(r: &mut impl Read, path: &Path) -> Result<RawHeader, String> {
    let name = path.display();
    let mut b = [0u8; 540];
    let got =
        read_full(r, &mut b[..348]).map_err(|e| format!("cannot read {name}: {}", io_words(&e)))?;
    if got < 348 {
        return Err(format!(
            "{name}: not a NIfTI file: it ends after {got} bytes, inside the 348-byte header"
        ));
    }
    let size_le = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let size_be = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let (version, be) = match (size_le, size_be) {
        (348, _) => (1u8, false),
        (_, 348) => (1, true),
        (540, _) => (2, false),
        (_, 540) => (2, true),
        _ => {
            return Err(format!(
                "{name}: not a NIfTI file: the header size field is {size_le}, not 348 \
                 (NIfTI-1) or 540 (NIfTI-2)"
            ))
        }
    };
    if version == 2 {
        let got = read_full(r, &mut b[348..])
            .map_err(|e| format!("cannot read {name}: {}", io_words(&e)))?;
        if got < 540 - 348 {
            return Err(format!(
                "{name}: the file ends after {} bytes, inside the 540-byte NIfTI-2 header",
                348 + got
            ));
        }
    }
    let f = Fields { b: &b, be };
    let (magic_at, single, pair) = if version == 1 {
        (344, &b"n+1\0"[..], &b"ni1\0"[..])
    } else {
        (4, &b"n+2\0"[..], &b"ni2\0"[..])
    };
    let magic = &b[magic_at..magic_at + 4];
    if magic == pair {
        return Err(format!(
            "{name}: a NIfTI header of a .hdr/.img pair; voxflow reads single-file NIfTI \
             (.nii, .nii.gz) only"
        ));
    }
    if magic != single {
        return Err(format!(
            "{name}: not a single-file NIfTI-{version} file: the magic string is {:?}, not {:?}",
            String::from_utf8_lossy(magic).trim_end_matches('\0'),
            String::from_utf8_lossy(single).trim_end_matches('\0'),
        ));
    }
    let p = if version == 1 {
        Parsed {
            dim: std::array::from_fn(|i| f.i16(40 + 2 * i).into()),
            datatype: f.i16(70),
            bitpix: f.i16(72),
            vox_offset: f.f32(108),
            scl_slope: f.f32(112),
            scl_inter: f.f32(116),
            xform: Xform {
                qform_code: f.i16(252).into(),
                sform_code: f.i16(254).into(),
                quatern: std::array::from_fn(|i| f.f32(256 + 4 * i)),
                qoffset: std::array::from_fn(|i| f.f32(268 + 4 * i)),
                srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f32(280 + 16 * r + 4 * c))),
                pixdim: std::array::from_fn(|i| f.f32(76 + 4 * i)),
            },
            xyzt_units: b[123].into(),
        }
    } else {
        Parsed {
            dim: std::array::from_fn(|i| f.i64(16 + 8 * i)),
            datatype: f.i16(12),
            bitpix: f.i16(14),
            vox_offset: f.i64(168) as f64,
            scl_slope: f.f64(176),
            scl_inter: f.f64(184),
            xform: Xform {
                qform_code: f.i32(344),
                sform_code: f.i32(348),
                quatern: std::array::from_fn(|i| f.f64(352 + 8 * i)),
                qoffset: std::array::from_fn(|i| f.f64(376 + 8 * i)),
                srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f64(400 + 32 * r + 8 * c))),
                pixdim: std::array::from_fn(|i| f.f64(104 + 8 * i)),
            },
            xyzt_units: f.i32(500),
        }
    };
    check_header(p, version, be, path)
}

pub(super) fn check_header(
    p: Parsed,
    version: u8,
    be: bool,
    path: &Path,
) -> Result<RawHeader, String> {
    let name = path.display();
    let header_size: u64 = if version == 1 { 348 } else { 540 };
    let ndim = p.dim[0];
    if !(1..=7).contains(&ndim) {
        return Err(format!(
            "{name}: dim[0] (the number of dimensions) is {ndim}, not 1 to 7"
        ));
    }
    let ndim = ndim as usize;
    if let Some(d) = (1..=ndim).find(|&d| p.dim[d] < 1) {
        return Err(format!(
            "{name}: dimension {d} has size {}; sizes must be at least 1",
            p.dim[d]
        ));
    }
    if ndim < 2 {
        return Err(format!(
            "{name}: a 1D file; voxflow reads 2D, 3D and 4D volumes"
        ));
    }
    if let Some(d) = (5..=ndim).find(|&d| p.dim[d] > 1) {
        return Err(format!(
            "{name}: dimension {d} has size {}; voxflow reads 2D, 3D and 4D (x, y, z, class) \
             volumes",
            p.dim[d]
        ));
    }
    let size = |d: usize| {
        if d <= ndim {
            usize::try_from(p.dim[d]).unwrap_or(usize::MAX)
        } else {
            1
        }
    };
    let dims = [size(1), size(2), size(3), size(4)];
    let dtype = match DTYPES.iter().find(|t| t.code == p.datatype) {
        Some(t) => *t,
        None => {
            return Err(match unsupported_dtype(p.datatype) {
                Some(what) => format!(
                    "{name}: voxel data type {what} is not supported; voxflow reads integer and \
                     float32/float64 scalar volumes"
                ),
                None => format!(
                    "{name}: datatype code {} is not a NIfTI data type",
                    p.datatype
                ),
            })
        }
    };
    if p.bitpix as u64 != dtype.size * 8 {
        return Err(format!(
            "{name}: bitpix is {} but datatype {} has {} bits per voxel; the header is \
             inconsistent",
            p.bitpix,
            dtype.name,
            dtype.size * 8
        ));
    }
    let min_offset = header_size + 4;
    let vox_offset = p.vox_offset;
    if !vox_offset.is_finite()
        || vox_offset.fract() != 0.0
        || vox_offset < min_offset as f64
        || vox_offset > 1e15
    {
        return Err(format!(
            "{name}: vox_offset {vox_offset} is not a valid voxel data offset (a whole number of \
             bytes of at least {min_offset} in a single-file NIfTI-{version})"
        ));
    }
    let scale = if p.scl_slope == 0.0 || !p.scl_slope.is_finite() {
        // The standard: scl_slope 0 means no scaling; nibabel also ignores a non-finite slope.
        None
    } else {
        let (s, i) = (p.scl_slope as f32, p.scl_inter as f32);
        if !s.is_finite() || s == 0.0 || !i.is_finite() {
            return Err(format!(
                "{name}: scl_slope {} with scl_inter {} is not a usable float32 scaling",
                p.scl_slope, p.scl_inter
            ));
        }
        Some((s, i))
    };
    let affine = xform_affine(&p.xform);
    if affine.iter().flatten().any(|v| !v.is_finite()) {
        return Err(format!(
            "{name}: the voxel-to-world transform ({}) has non-finite entries",
            xform_source(&p.xform)
        ));
    }
    let vs = affine_voxel_sizes(&affine);
    let det = affine[0][0] * (affine[1][1] * affine[2][2] - affine[1][2] * affine[2][1])
        - affine[0][1] * (affine[1][0] * affine[2][2] - affine[1][2] * affine[2][0])
        + affine[0][2] * (affine[1][0] * affine[2][1] - affine[1][1] * affine[2][0]);
    if vs.iter().any(|&v| !(v > 0.0 && v.is_finite())) || det == 0.0 || !det.is_finite() {
        return Err(format!(
            "{name}: the voxel-to-world transform ({}) gives voxel sizes {:?} mm; each must be \
             positive and the axes independent",
            xform_source(&p.xform),
            vs
        ));
    }
    Ok(RawHeader {
        version,
        header_size,
        big_endian: be,
        dims,
        ndim,
        dtype,
        vox_offset: vox_offset as u64,
        scale,
        xform: p.xform,
        xyzt_units: p.xyzt_units,
    })
}

pub(super) fn xform_source(x: &Xform) -> &'static str {
    if x.sform_code > 0 {
        "sform"
    } else if x.qform_code > 0 {
        "qform"
    } else {
        "pixdim"
    }
}
