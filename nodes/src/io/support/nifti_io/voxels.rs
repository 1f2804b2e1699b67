//! NIfTI voxel data: the read plan (stream type, shape) and the chunked, checked decoding.

use super::header::*;
use ndarray::{Array3, Array4};
use std::io::Read;
use std::path::Path;
use voxflow_runtime::stream::{StreamType, VolumeData};

/// What the reader makes of a checked header.
pub(super) struct ReadPlan {
    pub(super) ty: StreamType,
    pub(super) voxels: usize,
}

pub(super) fn plan_read(
    raw: &RawHeader,
    want: Option<StreamType>,
    path: &Path,
) -> Result<ReadPlan, String> {
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
    let voxels = crate::io::budget::check_voxels(
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
pub(super) const CHUNK: usize = 1 << 16;

/// Reads the voxel data into voxflow's layout: (k, j, i) for volumes, (k, c, j, i) for
/// probabilities. The file holds (i, j, k, c) with i fastest, so each (k, c) plane goes to
/// its place directly and nothing but the result and one chunk is held.
pub(super) fn read_voxels(
    r: &mut impl Read,
    raw: &RawHeader,
    plan: &ReadPlan,
    path: &Path,
) -> Result<VolumeData, String> {
    use crate::io::budget::try_zeroed;
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
            crate::io::budget::human_bytes(plan.voxels as u64 * if label { 1 } else { 4 })
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

pub(super) fn truncated(path: &Path, raw: &RawHeader, nbytes: u64, have: u64) -> String {
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
pub(super) fn decode(dtype: Dtype, big_endian: bool, raw: &[u8], out: &mut [f32]) {
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
pub(super) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
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
pub(super) fn io_words(e: &std::io::Error) -> String {
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
