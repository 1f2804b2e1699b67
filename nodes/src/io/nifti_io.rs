//! NIfTI reading and writing with exact geometry.

use flate2::bufread::MultiGzDecoder;
use ndarray::{Array3, Array4};
use nifti::writer::WriterOptions;
use nifti::NiftiHeader;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use voxflow_runtime::stream::{Header, StreamType, VolumeData};

pub type Affine = [[f64; 4]; 4];

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
struct Xform {
    qform_code: i32,
    sform_code: i32,
    quatern: [f64; 3],
    qoffset: [f64; 3],
    srow: [[f64; 4]; 3],
    pixdim: [f64; 4],
}

fn xform_affine(h: &Xform) -> Affine {
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

/// A NIfTI data type voxflow reads.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Dtype {
    code: i16,
    name: &'static str,
    size: u64,
}

const DTYPES: [Dtype; 10] = [
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
fn unsupported_dtype(code: i16) -> Option<&'static str> {
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
struct RawHeader {
    version: u8,
    header_size: u64,
    big_endian: bool,
    /// x, y, z, t (1 where the file has fewer dimensions).
    dims: [usize; 4],
    ndim: usize,
    dtype: Dtype,
    vox_offset: u64,
    /// `(slope, intercept)` when the file asks for scaling.
    scale: Option<(f32, f32)>,
    xform: Xform,
    xyzt_units: i32,
}

/// Field reader over a header's bytes in the file's byte order.
struct Fields<'a> {
    b: &'a [u8],
    be: bool,
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
struct Parsed {
    dim: [i64; 8],
    datatype: i16,
    bitpix: i16,
    vox_offset: f64,
    scl_slope: f64,
    scl_inter: f64,
    xform: Xform,
    xyzt_units: i32,
}

fn read_header(r: &mut impl Read, path: &Path) -> Result<RawHeader, String> {
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

fn check_header(p: Parsed, version: u8, be: bool, path: &Path) -> Result<RawHeader, String> {
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

fn xform_source(x: &Xform) -> &'static str {
    if x.sform_code > 0 {
        "sform"
    } else if x.qform_code > 0 {
        "qform"
    } else {
        "pixdim"
    }
}

/// What the reader makes of a checked header.
struct ReadPlan {
    ty: StreamType,
    voxels: usize,
}

fn plan_read(raw: &RawHeader, want: Option<StreamType>, path: &Path) -> Result<ReadPlan, String> {
    let name = path.display();
    let [nx, ny, nz, nt] = raw.dims;
    let float = matches!(raw.dtype.name, "float32" | "float64");
    let ty = match want {
        Some(t) => t,
        None if raw.ndim >= 4 && nt > 1 => {
            if !float {
                return Err(format!(
                    "{name}: a 4D file of {} with {nt} volumes; voxflow reads 4D files only as \
                     class probabilities (float32 or float64, x, y, z, class). Read one volume \
                     at a time with another tool first",
                    raw.dtype.name
                ));
            }
            StreamType::Prob
        }
        None if raw.dtype.name == "uint8" => StreamType::Label,
        None => StreamType::Image,
    };
    match ty {
        StreamType::Prob if raw.ndim != 4 => {
            return Err(format!(
                "{name}: a prob volume needs 4 dimensions (x, y, z, class), the file has {}",
                raw.ndim
            ))
        }
        StreamType::Image | StreamType::Label if nt > 1 => {
            return Err(format!(
                "{name}: expected a 3D volume, the file is 4D with {nt} volumes of \
                 {nx} x {ny} x {nz}"
            ))
        }
        _ => {}
    }
    let bytes_per_voxel = if ty == StreamType::Label { 1 } else { 4 };
    let voxels = super::budget::check_voxels(
        path,
        nx as u64,
        ny as u64,
        nz as u64,
        nt as u64,
        bytes_per_voxel,
    )?;
    voxels
        .checked_mul(raw.dtype.size as usize)
        .ok_or_else(|| format!("{name}: the voxel data is larger than this machine can address"))?;
    Ok(ReadPlan { ty, voxels })
}

/// Voxels decoded per read.
const CHUNK: usize = 1 << 16;

/// Reads the voxel data into voxflow's layout: (k, j, i) for volumes, (k, c, j, i) for
/// probabilities. The file holds (i, j, k, c) with i fastest, so each (k, c) plane goes to
/// its place directly and nothing but the result and one chunk is held.
fn read_voxels(
    r: &mut impl Read,
    raw: &RawHeader,
    plan: &ReadPlan,
    path: &Path,
) -> Result<VolumeData, String> {
    use super::budget::try_zeroed;
    let name = path.display();
    let [nx, ny, nz, nt] = raw.dims;
    let plane = nx * ny;
    let size = raw.dtype.size as usize;
    let mut bytes = try_zeroed::<u8>(path, CHUNK.min(plan.voxels) * size)?;
    let mut values = try_zeroed::<f32>(path, CHUNK.min(plan.voxels))?;
    let label = plan.ty == StreamType::Label;
    // Filled plane by plane (every plane exactly once) through the spare capacity, so that
    // memory is touched only as data arrives: a file that claims more than it holds costs little.
    let mut out_f32: Vec<f32> = Vec::new();
    let mut out_u8: Vec<u8> = Vec::new();
    let reserved = if label {
        out_u8.try_reserve_exact(plan.voxels)
    } else {
        out_f32.try_reserve_exact(plan.voxels)
    };
    reserved.map_err(|_| {
        format!(
            "{name}: cannot allocate {} for the volume: out of memory",
            super::budget::human_bytes(plan.voxels as u64 * if label { 1 } else { 4 })
        )
    })?;
    let mut read_total = 0u64;
    for c in 0..nt {
        for k in 0..nz {
            let dest = (k * nt + c) * plane;
            let mut done = 0;
            while done < plane {
                let n = CHUNK.min(plane - done);
                let got = read_full(r, &mut bytes[..n * size])
                    .map_err(|e| format!("cannot read the voxels of {name}: {}", io_words(&e)))?;
                read_total += got as u64;
                if got < n * size {
                    let nbytes = plan.voxels as u64 * raw.dtype.size;
                    return Err(truncated(path, raw, nbytes, read_total));
                }
                let vals = &mut values[..n];
                decode(raw.dtype, raw.big_endian, &bytes[..n * size], vals);
                if let Some((s, i)) = raw.scale {
                    for v in vals.iter_mut() {
                        *v = *v * s + i;
                    }
                }
                let at = |off: usize| {
                    let pos = done + off;
                    let c = if nt > 1 {
                        format!(", c={c}")
                    } else {
                        String::new()
                    };
                    format!("voxel (i={}, j={}, k={k}{c})", pos % nx, pos / nx)
                };
                match plan.ty {
                    StreamType::Label => {
                        for (o, (idx, &v)) in out_u8.spare_capacity_mut()
                            [dest + done..dest + done + n]
                            .iter_mut()
                            .zip(vals.iter().enumerate())
                        {
                            if !(0.0..=255.0).contains(&v) || v.fract() != 0.0 {
                                return Err(format!(
                                    "{name}: label volumes need integer values in 0..255; {} \
                                     holds {v}",
                                    at(idx)
                                ));
                            }
                            o.write(v as u8);
                        }
                    }
                    StreamType::Prob | StreamType::Image => {
                        let prob = plan.ty == StreamType::Prob;
                        let bad = |v: &f32| {
                            if prob {
                                !(0.0..=1.0).contains(v)
                            } else {
                                !v.is_finite()
                            }
                        };
                        if let Some(idx) = vals.iter().position(bad) {
                            return Err(if prob {
                                format!(
                                    "{name}: probabilities must lie in 0..1; {} holds {}",
                                    at(idx),
                                    vals[idx]
                                )
                            } else {
                                format!(
                                    "{name}: {} holds {}; voxflow needs finite intensities",
                                    at(idx),
                                    vals[idx]
                                )
                            });
                        }
                        for (o, &v) in out_f32.spare_capacity_mut()[dest + done..dest + done + n]
                            .iter_mut()
                            .zip(vals.iter())
                        {
                            o.write(v);
                        }
                    }
                }
                done += n;
            }
        }
    }
    // SAFETY: the loops above wrote every (k, c) plane, i.e. all `plan.voxels` values, in the
    // capacity reserved for them (a short read returns before this point).
    unsafe {
        if label {
            out_u8.set_len(plan.voxels);
        } else {
            out_f32.set_len(plan.voxels);
        }
    }
    let bad_shape = |e: ndarray::ShapeError| format!("{name}: {e}");
    Ok(match plan.ty {
        StreamType::Label => {
            VolumeData::Label(Array3::from_shape_vec((nz, ny, nx), out_u8).map_err(bad_shape)?)
        }
        StreamType::Image => {
            VolumeData::Image(Array3::from_shape_vec((nz, ny, nx), out_f32).map_err(bad_shape)?)
        }
        StreamType::Prob => {
            VolumeData::Prob(Array4::from_shape_vec((nz, nt, ny, nx), out_f32).map_err(bad_shape)?)
        }
    })
}

fn truncated(path: &Path, raw: &RawHeader, nbytes: u64, have: u64) -> String {
    let [nx, ny, nz, nt] = raw.dims;
    format!(
        "{}: the file is truncated: the header promises {nx} x {ny} x {nz}{} voxels of {} \
         ({nbytes} bytes from byte {}), the file holds {have} of them",
        path.display(),
        if nt > 1 {
            format!(" x {nt}")
        } else {
            String::new()
        },
        raw.dtype.name,
        raw.vox_offset,
    )
}

/// Converts raw values of `dtype` to float32 as the `nifti` crate does (`as` casts).
fn decode(dtype: Dtype, big_endian: bool, raw: &[u8], out: &mut [f32]) {
    macro_rules! go {
        ($t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            for (o, c) in out.iter_mut().zip(raw.chunks_exact(N)) {
                let mut b = [0u8; N];
                b.copy_from_slice(c);
                let v = if big_endian {
                    <$t>::from_be_bytes(b)
                } else {
                    <$t>::from_le_bytes(b)
                };
                *o = v as f32;
            }
        }};
    }
    match dtype.code {
        2 => go!(u8),
        4 => go!(i16),
        8 => go!(i32),
        16 => go!(f32),
        64 => go!(f64),
        256 => go!(i8),
        512 => go!(u16),
        768 => go!(u32),
        1024 => go!(i64),
        _ => go!(u64),
    }
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// An I/O error in words (gzip errors say the data is corrupt).
fn io_words(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::InvalidInput | K::InvalidData => format!("the gzip stream is corrupt ({e})"),
        K::UnexpectedEof => "the file ends early".into(),
        K::NotFound => "no such file".into(),
        K::PermissionDenied => "permission denied".into(),
        K::IsADirectory => "it is a folder".into(),
        _ => e.to_string(),
    }
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
