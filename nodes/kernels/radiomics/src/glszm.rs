//! Gray level size zone matrix features, as PyRadiomics `glszm`: zones are
//! 26-connected groups of mask voxels with the same discretised level.

use crate::roi::{directions26, Roi, OUTSIDE};
use crate::EPS;

pub(crate) const NAMES: &[&str] = &[
    "GrayLevelNonUniformity",
    "GrayLevelNonUniformityNormalized",
    "GrayLevelVariance",
    "HighGrayLevelZoneEmphasis",
    "LargeAreaEmphasis",
    "LargeAreaHighGrayLevelEmphasis",
    "LargeAreaLowGrayLevelEmphasis",
    "LowGrayLevelZoneEmphasis",
    "SizeZoneNonUniformity",
    "SizeZoneNonUniformityNormalized",
    "SmallAreaEmphasis",
    "SmallAreaHighGrayLevelEmphasis",
    "SmallAreaLowGrayLevelEmphasis",
    "ZoneEntropy",
    "ZonePercentage",
    "ZoneVariance",
];

/// Zones as `(level index, size)`.
pub(crate) fn zones(roi: &Roi) -> Vec<(u32, usize)> {
    let offs: Vec<isize> = directions26().into_iter().map(|d| roi.offset(d)).collect();
    // Levels still to visit; visited voxels become OUTSIDE.
    let mut lv = roi.plvl.clone();
    let mut stack = Vec::new();
    let mut out = Vec::new();
    for &start in &roi.vox {
        let l = lv[start];
        if l == OUTSIDE {
            continue;
        }
        lv[start] = OUTSIDE;
        stack.push(start);
        let mut size = 0usize;
        while let Some(c) = stack.pop() {
            size += 1;
            for &o in &offs {
                let j = (c as isize + o) as usize;
                if lv[j] == l {
                    lv[j] = OUTSIDE;
                    stack.push(j);
                }
            }
        }
        out.push((l, size));
    }
    out
}

pub(crate) fn compute(roi: &Roi) -> Vec<f64> {
    let mut z = zones(roi);
    z.sort_unstable();
    let gl: Vec<f64> = roi.gray_levels.iter().map(|&g| g as f64).collect();
    let nzones = z.len() as f64;
    let np = roi.n_voxels() as f64;
    let mut pg = vec![0f64; gl.len()];
    let mut ps = std::collections::BTreeMap::<usize, f64>::new();
    let (mut salgle, mut sahgle, mut lalgle, mut lahgle, mut ent) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut k = 0;
    while k < z.len() {
        let mut e = k;
        while e < z.len() && z[e] == z[k] {
            e += 1;
        }
        let (l, s) = z[k];
        let v = (e - k) as f64;
        let g2 = gl[l as usize].powi(2);
        let j2 = (s as f64).powi(2);
        pg[l as usize] += v;
        *ps.entry(s).or_insert(0.0) += v;
        salgle += v / (g2 * j2);
        sahgle += v * g2 / j2;
        lalgle += v * j2 / g2;
        lahgle += v * g2 * j2;
        let q = v / nzones;
        ent -= q * (q + EPS).log2();
        k = e;
    }
    let (mut gln, mut lgze, mut hgze, mut ui) = (0.0, 0.0, 0.0, 0.0);
    for (i, &v) in pg.iter().enumerate() {
        gln += v * v;
        lgze += v / (gl[i] * gl[i]);
        hgze += v * gl[i] * gl[i];
        ui += v / nzones * gl[i];
    }
    let glv: f64 = pg
        .iter()
        .enumerate()
        .map(|(i, &v)| v / nzones * (gl[i] - ui).powi(2))
        .sum();
    let (mut sae, mut lae, mut szn, mut uj) = (0.0, 0.0, 0.0, 0.0);
    for (&s, &v) in &ps {
        let j = s as f64;
        sae += v / (j * j);
        lae += v * j * j;
        szn += v * v;
        uj += v / nzones * j;
    }
    let zv: f64 = ps
        .iter()
        .map(|(&s, &v)| v / nzones * (s as f64 - uj).powi(2))
        .sum();
    vec![
        gln / nzones,
        gln / (nzones * nzones),
        glv,
        hgze / nzones,
        lae / nzones,
        lahgle / nzones,
        lalgle / nzones,
        lgze / nzones,
        szn / nzones,
        szn / (nzones * nzones),
        sae / nzones,
        sahgle / nzones,
        salgle / nzones,
        ent,
        nzones / np,
        zv,
    ]
}
