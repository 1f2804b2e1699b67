//! Shape features (3D), as PyRadiomics `shape`: marching-cubes mesh on the mask padded
//! by one voxel, maximum diameters between voxel centres, PCA axis lengths.

use crate::linalg::sym_eigenvalues;
use crate::roi::{Roi, OUTSIDE};
use rayon::prelude::*;

pub(crate) const NAMES: &[&str] = &[
    "Elongation",
    "Flatness",
    "LeastAxisLength",
    "MajorAxisLength",
    "Maximum2DDiameterColumn",
    "Maximum2DDiameterRow",
    "Maximum2DDiameterSlice",
    "Maximum3DDiameter",
    "MeshVolume",
    "MinorAxisLength",
    "Sphericity",
    "SurfaceArea",
    "SurfaceVolumeRatio",
    "VoxelVolume",
];

/// Mask padded by one voxel on every side.
struct Padded {
    dims: [usize; 3],
    m: Vec<bool>,
}

impl Padded {
    fn new(roi: &Roi) -> Padded {
        Padded {
            dims: roi.pdims,
            m: roi.plvl.iter().map(|&l| l != OUTSIDE).collect(),
        }
    }

    #[inline]
    fn idx(&self, z: usize, y: usize, x: usize) -> usize {
        (z * self.dims[1] + y) * self.dims[2] + x
    }
}

pub(crate) fn compute(roi: &Roi, spacing: [f64; 3]) -> Vec<f64> {
    let pad = Padded::new(roi);
    let ((area, volume), diam) = rayon::join(|| mesh(&pad, spacing), || diameters(&pad, spacing));
    let np = roi.n_voxels() as f64;
    let ev = axes(&pad, spacing);
    let sphericity = (36.0 * std::f64::consts::PI * volume * volume).cbrt() / area;
    vec![
        (ev[1] / ev[2]).sqrt(),
        (ev[0] / ev[2]).sqrt(),
        ev[0].sqrt() * 4.0,
        ev[2].sqrt() * 4.0,
        diam[1],
        diam[2],
        diam[0],
        diam[3],
        volume,
        ev[1].sqrt() * 4.0,
        sphericity,
        area,
        area / volume,
        np * (spacing[0] * spacing[2] * spacing[1]),
    ]
}

/// Eigenvalues (ascending) of the covariance of the physical voxel coordinates.
fn axes(pad: &Padded, s: [f64; 3]) -> [f64; 3] {
    let [dz, dy, dx] = pad.dims;
    let mut n = 0f64;
    let mut sum = [0f64; 3];
    for z in 0..dz {
        for y in 0..dy {
            for x in 0..dx {
                if pad.m[pad.idx(z, y, x)] {
                    n += 1.0;
                    sum[0] += z as f64 * s[0];
                    sum[1] += y as f64 * s[1];
                    sum[2] += x as f64 * s[2];
                }
            }
        }
    }
    let mean = [sum[0] / n, sum[1] / n, sum[2] / n];
    let mut c = [0f64; 9];
    for z in 0..dz {
        for y in 0..dy {
            for x in 0..dx {
                if pad.m[pad.idx(z, y, x)] {
                    let p = [
                        z as f64 * s[0] - mean[0],
                        y as f64 * s[1] - mean[1],
                        x as f64 * s[2] - mean[2],
                    ];
                    for a in 0..3 {
                        for b in 0..3 {
                            c[a * 3 + b] += p[a] * p[b];
                        }
                    }
                }
            }
        }
    }
    let ev = sym_eigenvalues(c.iter().map(|v| v / n).collect(), 3);
    // PyRadiomics rounds eigenvalues in (-1e-10, 0) to 0.
    let fix = |v: f64| if v < 0.0 && v > -1e-10 { 0.0 } else { v };
    [fix(ev[0]), fix(ev[1]), fix(ev[2])]
}

/// Marching-cubes surface area and (signed-tetrahedron) volume, PyRadiomics `cshape`.
fn mesh(pad: &Padded, s: [f64; 3]) -> (f64, f64) {
    let [dz, dy, dx] = pad.dims;
    let (area, vol6) = (0..dz - 1)
        .into_par_iter()
        .map(|iz| {
            let mut area = 0.0;
            let mut vol = 0.0;
            for iy in 0..dy - 1 {
                for ix in 0..dx - 1 {
                    let mut cube: u8 = 0;
                    for (a, g) in GRID.iter().enumerate() {
                        if pad.m[pad.idx(iz + g[0], iy + g[1], ix + g[2])] {
                            cube |= 1 << a;
                        }
                    }
                    let mut sign = -1.0;
                    if cube & 0x80 != 0 {
                        cube ^= 0xff;
                    } else {
                        sign = 1.0;
                    }
                    if cube == 0 || cube >= 128 {
                        continue;
                    }
                    let o = [iz as f64, iy as f64, ix as f64];
                    for t in TRI[cube as usize].chunks_exact(3) {
                        let p = |e: u8| {
                            let v = VERT[e as usize];
                            [
                                (o[0] + v[0]) * s[0],
                                (o[1] + v[1]) * s[1],
                                (o[2] + v[2]) * s[2],
                            ]
                        };
                        let (mut a, mut b, c) = (p(t[0]), p(t[1]), p(t[2]));
                        let ab = cross(a, b);
                        vol += sign * (ab[0] * c[0] + ab[1] * c[1] + ab[2] * c[2]);
                        for d in 0..3 {
                            a[d] -= c[d];
                            b[d] -= c[d];
                        }
                        let ab = cross(a, b);
                        area += 0.5 * (ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2]).sqrt();
                    }
                }
            }
            (area, vol)
        })
        .reduce(|| (0.0, 0.0), |x, y| (x.0 + y.0, x.1 + y.1));
    (area, vol6 / 6.0)
}

#[inline]
fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - b[1] * a[2],
        a[2] * b[0] - b[2] * a[0],
        a[0] * b[1] - b[0] * a[1],
    ]
}

/// Maximum diameters between marching-cubes mesh vertices (PyRadiomics 3.x):
/// `[same slice (k), same row (j), same column (i), 3D]`.
///
/// Mesh vertices are the midpoints of grid edges whose two voxels differ in the padded
/// mask. PyRadiomics compares all vertex pairs. A maximum distance is attained between
/// extreme points of the convex hull (planar hull for the planar diameters), and a 3D
/// extreme point is also extreme in each of its three axis-aligned planes. So we compare
/// only vertices of the planar hulls (exact integer hulls, in half-voxel units; axis
/// scaling keeps extreme points) and use PyRadiomics' arithmetic for the distances.
fn diameters(pad: &Padded, s: [f64; 3]) -> [f64; 4] {
    let [dz, dy, dx] = pad.dims;
    // Vertices in half-voxel units: (2k, 2j, 2i) + unit step along the edge axis.
    let mut verts: Vec<[i64; 3]> = Vec::new();
    for z in 0..dz {
        for y in 0..dy {
            for x in 0..dx {
                let m = pad.m[pad.idx(z, y, x)];
                let h = [2 * z as i64, 2 * y as i64, 2 * x as i64];
                if z + 1 < dz && m != pad.m[pad.idx(z + 1, y, x)] {
                    verts.push([h[0] + 1, h[1], h[2]]);
                }
                if y + 1 < dy && m != pad.m[pad.idx(z, y + 1, x)] {
                    verts.push([h[0], h[1] + 1, h[2]]);
                }
                if x + 1 < dx && m != pad.m[pad.idx(z, y, x + 1)] {
                    verts.push([h[0], h[1], h[2] + 1]);
                }
            }
        }
    }
    let coord = |v: &[i64; 3]| {
        [
            v[0] as f64 * 0.5 * s[0],
            v[1] as f64 * 0.5 * s[1],
            v[2] as f64 * 0.5 * s[2],
        ]
    };
    let results: Vec<(f64, Vec<bool>)> = (0..3)
        .into_par_iter()
        .map(|ax| {
            let (u, w) = match ax {
                0 => (1, 2),
                1 => (0, 2),
                _ => (0, 1),
            };
            let mut order: Vec<usize> = (0..verts.len()).collect();
            order.sort_unstable_by_key(|&i| (verts[i][ax], verts[i][u], verts[i][w]));
            let mut on_hull = vec![false; verts.len()];
            let mut best = 0f64;
            let mut g = 0;
            while g < order.len() {
                let mut e = g;
                while e < order.len() && verts[order[e]][ax] == verts[order[g]][ax] {
                    e += 1;
                }
                let pts: Vec<[i64; 2]> = order[g..e]
                    .iter()
                    .map(|&i| [verts[i][u], verts[i][w]])
                    .collect();
                let hull: Vec<usize> = hull_2d(&pts).into_iter().map(|k| order[g + k]).collect();
                for &i in &hull {
                    on_hull[i] = true;
                }
                let c: Vec<[f64; 3]> = hull.iter().map(|&i| coord(&verts[i])).collect();
                best = best.max(max_pairs(&c));
                g = e;
            }
            (best, on_hull)
        })
        .collect();
    let cand: Vec<[f64; 3]> = (0..verts.len())
        .filter(|&i| results.iter().all(|r| r.1[i]))
        .map(|i| coord(&verts[i]))
        .collect();
    [results[0].0, results[1].0, results[2].0, max_pairs(&cand)].map(f64::sqrt)
}

/// Largest squared distance between two points (0 for fewer than two).
fn max_pairs(c: &[[f64; 3]]) -> f64 {
    let mut m = 0f64;
    for (i, a) in c.iter().enumerate() {
        for b in &c[i + 1..] {
            let d = [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
            let d = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
            if d > m {
                m = d;
            }
        }
    }
    m
}

/// Indices of the extreme points (hull vertices without collinear points) of `p`,
/// which must be sorted lexicographically and distinct (Andrew's monotone chain).
fn hull_2d(p: &[[i64; 2]]) -> Vec<usize> {
    if p.len() <= 2 {
        return (0..p.len()).collect();
    }
    let cross = |o: [i64; 2], a: [i64; 2], b: [i64; 2]| {
        (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
    };
    let mut h: Vec<usize> = Vec::with_capacity(2 * p.len());
    for i in 0..p.len() {
        while h.len() >= 2 && cross(p[h[h.len() - 2]], p[h[h.len() - 1]], p[i]) <= 0 {
            h.pop();
        }
        h.push(i);
    }
    let lower = h.len() + 1;
    for i in (0..p.len() - 1).rev() {
        while h.len() >= lower && cross(p[h[h.len() - 2]], p[h[h.len() - 1]], p[i]) <= 0 {
            h.pop();
        }
        h.push(i);
    }
    h.pop();
    h.sort_unstable();
    h.dedup();
    h
}

/// Corners of a marching cube, offsets (k, j, i).
const GRID: [[usize; 3]; 8] = [
    [0, 0, 0],
    [0, 0, 1],
    [0, 1, 1],
    [0, 1, 0],
    [1, 0, 0],
    [1, 0, 1],
    [1, 1, 1],
    [1, 1, 0],
];

/// Edge midpoints (k, j, i) of the cube; the surface crosses edges halfway.
const VERT: [[f64; 3]; 12] = [
    [0.0, 0.0, 0.5],
    [0.0, 0.5, 1.0],
    [0.0, 1.0, 0.5],
    [0.0, 0.5, 0.0],
    [1.0, 0.0, 0.5],
    [1.0, 0.5, 1.0],
    [1.0, 1.0, 0.5],
    [1.0, 0.5, 0.0],
    [0.5, 0.0, 0.0],
    [0.5, 0.0, 1.0],
    [0.5, 1.0, 1.0],
    [0.5, 1.0, 0.0],
];

/// Triangles (edge indices) per cube configuration 0..127: the classic marching-cubes
/// table (Lorensen & Cline 1987; P. Bourke's public-domain table), in the half-size form
/// PyRadiomics uses (configurations >= 128 are complemented, volume sign flipped).
#[rustfmt::skip]
const TRI: [&[u8]; 128] = [
    &[],
    &[0, 8, 3],
    &[1, 9, 0],
    &[1, 8, 3, 1, 9, 8],
    &[1, 2, 10],
    &[0, 8, 3, 1, 2, 10],
    &[9, 2, 10, 0, 2, 9],
    &[2, 8, 3, 2, 10, 8, 10, 9, 8],
    &[11, 2, 3],
    &[11, 2, 0, 0, 8, 11],
    &[1, 9, 0, 11, 2, 3],
    &[11, 2, 1, 1, 9, 11, 9, 8, 11],
    &[3, 10, 1, 11, 10, 3],
    &[10, 1, 0, 0, 8, 10, 8, 11, 10],
    &[9, 0, 3, 3, 11, 9, 11, 10, 9],
    &[9, 8, 10, 11, 10, 8],
    &[4, 7, 8],
    &[0, 4, 3, 4, 7, 3],
    &[1, 9, 0, 4, 7, 8],
    &[1, 9, 4, 1, 4, 7, 1, 7, 3],
    &[1, 2, 10, 4, 7, 8],
    &[3, 4, 7, 3, 0, 4, 1, 2, 10],
    &[9, 2, 10, 9, 0, 2, 4, 7, 8],
    &[2, 10, 9, 2, 9, 7, 2, 7, 3, 4, 7, 9],
    &[4, 7, 8, 11, 2, 3],
    &[11, 4, 7, 11, 2, 4, 2, 0, 4],
    &[1, 9, 0, 4, 7, 8, 11, 2, 3],
    &[4, 7, 11, 9, 4, 11, 11, 2, 9, 1, 9, 2],
    &[3, 10, 1, 11, 10, 3, 4, 7, 8],
    &[11, 10, 1, 1, 4, 11, 1, 0, 4, 4, 7, 11],
    &[4, 7, 8, 9, 0, 3, 3, 11, 9, 11, 10, 9],
    &[4, 7, 11, 4, 11, 9, 9, 11, 10],
    &[9, 5, 4],
    &[9, 5, 4, 0, 8, 3],
    &[0, 5, 4, 0, 1, 5],
    &[8, 5, 4, 8, 3, 5, 3, 1, 5],
    &[1, 2, 10, 9, 5, 4],
    &[0, 8, 3, 1, 2, 10, 9, 5, 4],
    &[2, 10, 5, 5, 4, 2, 2, 4, 0],
    &[2, 10, 5, 3, 2, 5, 3, 5, 4, 8, 3, 4],
    &[9, 5, 4, 11, 2, 3],
    &[11, 2, 0, 0, 8, 11, 9, 5, 4],
    &[0, 5, 4, 0, 1, 5, 11, 2, 3],
    &[2, 1, 5, 2, 5, 8, 11, 2, 8, 5, 4, 8],
    &[3, 10, 1, 11, 10, 3, 9, 5, 4],
    &[5, 4, 9, 10, 1, 0, 0, 8, 10, 8, 11, 10],
    &[5, 4, 0, 5, 0, 11, 10, 5, 11, 11, 0, 3],
    &[5, 4, 8, 10, 5, 8, 11, 10, 8],
    &[7, 8, 9, 5, 7, 9],
    &[3, 0, 9, 5, 3, 9, 3, 5, 7],
    &[7, 8, 0, 0, 1, 7, 7, 1, 5],
    &[1, 5, 7, 1, 7, 3],
    &[7, 8, 9, 5, 7, 9, 1, 2, 10],
    &[1, 2, 10, 3, 0, 9, 3, 9, 5, 3, 5, 7],
    &[0, 2, 8, 8, 2, 5, 8, 5, 7, 2, 10, 5],
    &[2, 10, 5, 2, 5, 3, 3, 5, 7],
    &[5, 7, 9, 7, 8, 9, 11, 2, 3],
    &[5, 7, 9, 9, 7, 2, 2, 0, 9, 11, 2, 7],
    &[11, 2, 3, 0, 1, 8, 1, 7, 8, 1, 5, 7],
    &[2, 1, 11, 1, 7, 11, 1, 5, 7],
    &[7, 8, 9, 5, 7, 9, 3, 10, 1, 11, 10, 3],
    &[5, 7, 0, 5, 0, 9, 7, 11, 0, 10, 1, 0, 11, 10, 0],
    &[11, 10, 0, 0, 3, 11, 10, 5, 0, 0, 7, 8, 5, 7, 0],
    &[11, 10, 5, 5, 7, 11],
    &[6, 5, 10],
    &[0, 8, 3, 6, 5, 10],
    &[1, 9, 0, 6, 5, 10],
    &[1, 8, 3, 1, 9, 8, 6, 5, 10],
    &[1, 6, 5, 1, 2, 6],
    &[1, 6, 5, 1, 2, 6, 0, 8, 3],
    &[9, 6, 5, 9, 0, 6, 0, 2, 6],
    &[5, 9, 8, 5, 8, 2, 5, 2, 6, 8, 3, 2],
    &[11, 2, 3, 6, 5, 10],
    &[11, 2, 0, 0, 8, 11, 6, 5, 10],
    &[1, 9, 0, 11, 2, 3, 6, 5, 10],
    &[11, 2, 1, 1, 9, 11, 9, 8, 11, 6, 5, 10],
    &[6, 3, 11, 6, 5, 3, 5, 1, 3],
    &[0, 8, 11, 0, 11, 5, 0, 5, 1, 5, 11, 6],
    &[6, 3, 11, 0, 3, 6, 0, 6, 5, 0, 5, 9],
    &[6, 5, 9, 6, 9, 11, 11, 9, 8],
    &[4, 7, 8, 6, 5, 10],
    &[0, 4, 3, 4, 7, 3, 6, 5, 10],
    &[1, 9, 0, 4, 7, 8, 6, 5, 10],
    &[1, 9, 4, 1, 4, 7, 1, 7, 3, 6, 5, 10],
    &[4, 7, 8, 1, 6, 5, 1, 2, 6],
    &[0, 4, 3, 4, 7, 3, 1, 6, 5, 1, 2, 6],
    &[4, 7, 8, 9, 6, 5, 9, 0, 6, 0, 2, 6],
    &[7, 3, 9, 4, 7, 9, 3, 2, 9, 5, 9, 6, 2, 6, 9],
    &[11, 2, 3, 4, 7, 8, 6, 5, 10],
    &[11, 4, 7, 11, 2, 4, 2, 0, 4, 6, 5, 10],
    &[1, 9, 0, 11, 2, 3, 4, 7, 8, 6, 5, 10],
    &[4, 7, 11, 9, 4, 11, 11, 2, 9, 1, 9, 2, 6, 5, 10],
    &[4, 7, 8, 6, 3, 11, 6, 5, 3, 5, 1, 3],
    &[5, 1, 11, 5, 11, 6, 1, 0, 11, 4, 7, 11, 0, 4, 11],
    &[4, 7, 8, 6, 3, 11, 0, 3, 6, 0, 6, 5, 0, 5, 9],
    &[6, 5, 9, 6, 9, 11, 4, 7, 9, 7, 11, 9],
    &[10, 4, 9, 6, 4, 10],
    &[10, 4, 9, 6, 4, 10, 0, 8, 3],
    &[0, 1, 10, 10, 6, 0, 6, 4, 0],
    &[1, 8, 3, 1, 6, 8, 8, 6, 4, 6, 1, 10],
    &[1, 4, 9, 1, 2, 4, 2, 6, 4],
    &[1, 4, 9, 1, 2, 4, 2, 6, 4, 0, 8, 3],
    &[0, 2, 4, 4, 2, 6],
    &[8, 3, 2, 8, 2, 4, 4, 2, 6],
    &[11, 2, 3, 10, 4, 9, 6, 4, 10],
    &[11, 2, 0, 0, 8, 11, 10, 4, 9, 6, 4, 10],
    &[11, 2, 3, 0, 1, 10, 10, 6, 0, 6, 4, 0],
    &[6, 4, 1, 6, 1, 10, 1, 4, 8, 11, 2, 1, 1, 8, 11],
    &[9, 6, 4, 3, 6, 9, 1, 3, 9, 11, 6, 3],
    &[1, 8, 11, 0, 8, 1, 11, 6, 1, 1, 4, 9, 6, 4, 1],
    &[6, 3, 11, 0, 3, 6, 6, 4, 0],
    &[8, 6, 4, 6, 8, 11],
    &[6, 7, 10, 7, 8, 10, 8, 9, 10],
    &[6, 7, 10, 0, 10, 7, 0, 9, 10, 0, 7, 3],
    &[6, 7, 10, 1, 10, 7, 1, 7, 8, 0, 1, 8],
    &[6, 7, 10, 1, 10, 7, 1, 7, 3],
    &[1, 2, 6, 1, 6, 8, 1, 8, 9, 6, 7, 8],
    &[2, 6, 9, 1, 2, 9, 6, 7, 9, 3, 0, 9, 7, 3, 9],
    &[0, 7, 8, 7, 0, 6, 6, 0, 2],
    &[2, 7, 3, 2, 6, 7],
    &[11, 2, 3, 6, 7, 10, 7, 8, 10, 8, 9, 10],
    &[2, 0, 7, 11, 2, 7, 0, 9, 7, 6, 7, 10, 9, 10, 7],
    &[6, 7, 10, 1, 10, 7, 1, 7, 8, 0, 1, 8, 11, 2, 3],
    &[11, 2, 1, 1, 7, 11, 10, 6, 1, 1, 6, 7],
    &[8, 9, 6, 6, 7, 8, 1, 6, 9, 11, 6, 3, 1, 3, 6],
    &[0, 9, 1, 6, 7, 11],
    &[0, 7, 8, 7, 0, 6, 0, 3, 11, 11, 6, 0],
    &[6, 7, 11],
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hull_drops_interior_and_collinear_points() {
        // Square with edge midpoints and centre: only the 4 corners are extreme.
        let mut p = vec![
            [0, 0],
            [0, 1],
            [0, 2],
            [1, 0],
            [1, 1],
            [1, 2],
            [2, 0],
            [2, 1],
            [2, 2],
        ];
        p.sort();
        let h: Vec<[i64; 2]> = hull_2d(&p).into_iter().map(|i| p[i]).collect();
        assert_eq!(h, vec![[0, 0], [0, 2], [2, 0], [2, 2]]);
        assert_eq!(hull_2d(&[[0, 0], [1, 1], [2, 2]]).len(), 2);
    }

    #[test]
    fn pruned_diameters_equal_all_pairs() {
        // Random blobs: hull-pruned maxima equal the brute force over all vertices.
        let mut seed = 12345u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as f64 / (1u64 << 31) as f64
        };
        for _ in 0..20 {
            let dims = [9, 10, 11];
            let mut m = vec![false; dims[0] * dims[1] * dims[2]];
            for z in 1..dims[0] - 1 {
                for y in 1..dims[1] - 1 {
                    for x in 1..dims[2] - 1 {
                        m[(z * dims[1] + y) * dims[2] + x] = rnd() < 0.3;
                    }
                }
            }
            let pad = Padded { dims, m };
            let s = [2.0, 0.7, 0.9];
            let got = diameters(&pad, s);
            let mut verts = Vec::new();
            for z in 0..dims[0] {
                for y in 0..dims[1] {
                    for x in 0..dims[2] {
                        let v = pad.m[pad.idx(z, y, x)];
                        let h = [2.0 * z as f64, 2.0 * y as f64, 2.0 * x as f64];
                        for (a, (n, q)) in [
                            (z + 1 < dims[0], (z + 1, y, x)),
                            (y + 1 < dims[1], (z, y + 1, x)),
                            (x + 1 < dims[2], (z, y, x + 1)),
                        ]
                        .into_iter()
                        .enumerate()
                        {
                            if n && v != pad.m[pad.idx(q.0, q.1, q.2)] {
                                let mut c = h;
                                c[a] += 1.0;
                                verts.push([
                                    c[0] * 0.5 * s[0],
                                    c[1] * 0.5 * s[1],
                                    c[2] * 0.5 * s[2],
                                ]);
                            }
                        }
                    }
                }
            }
            let mut want = [0f64; 4];
            for (i, a) in verts.iter().enumerate() {
                for b in &verts[i + 1..] {
                    let d: f64 = (0..3).map(|k| (a[k] - b[k]) * (a[k] - b[k])).sum();
                    for k in 0..3 {
                        if a[k] == b[k] {
                            want[k] = want[k].max(d);
                        }
                    }
                    want[3] = want[3].max(d);
                }
            }
            assert_eq!(got, want.map(f64::sqrt));
        }
    }

    #[test]
    fn table_crosses_exactly_the_sign_changing_edges() {
        let edges: Vec<(usize, usize)> = VERT
            .iter()
            .map(|v| {
                let ends: Vec<usize> = (0..8)
                    .filter(|&c| (0..3).all(|d| (GRID[c][d] as f64 - v[d]).abs() <= 0.5))
                    .collect();
                (ends[0], ends[1])
            })
            .collect();
        for (c, row) in TRI.iter().enumerate() {
            assert_eq!(row.len() % 3, 0);
            let mut used: Vec<usize> = row.iter().map(|&e| e as usize).collect();
            used.sort();
            used.dedup();
            let want: Vec<usize> = (0..12)
                .filter(|&e| ((c >> edges[e].0) & 1) != ((c >> edges[e].1) & 1))
                .collect();
            assert_eq!(used, want, "configuration {c}");
        }
    }
}
