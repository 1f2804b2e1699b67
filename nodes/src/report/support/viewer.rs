//! The report's interactive viewer: NiiVue (inlined, so the page stays one file that opens
//! offline) on the image and label, embedded as gzipped 8-bit NIfTI in base64.

use super::draw;
use crate::report::report::esc;
use base64::Engine;
use flate2::{write::GzEncoder, Compression};
use ndarray::{ArrayView3, Axis};
use std::fmt::Write as _;
use std::io::Write as _;
use voxflow_runtime::Volume;

/// Version of the inlined NiiVue (npm `@niivue/niivue`, pinned in scripts/setup-niivue.sh).
pub const NIIVUE_VERSION: &str = env!("VOXFLOW_NIIVUE_VERSION");
/// NiiVue's single-file bundle: `export const esm = "<URL-encoded ES module>"`.
const NIIVUE_JS: &str = include_str!(env!("VOXFLOW_NIIVUE_JS"));
/// The page's code that starts NiiVue on the embedded volumes.
const VIEWER_JS: &str = include_str!("viewer.js");

/// Default of the report's `viewer_voxels`: 512 x 512 x 129 CT is shown at half the
/// in-plane resolution.
pub const DEFAULT_MAX_VOXELS: usize = 1 << 24;

/// CSS of the viewer's section, for the page's <style>; printing leaves the viewer out.
pub const STYLE: &str = ".vw{display:flex;gap:4px;height:480px;background:#000}.vp{flex:3;min-width:0}\
.v3{flex:1;min-width:0}.vn{font-size:0.8em;color:#666}@media print{#viewer,h2.viewer{display:none}}";

/// The embedded volumes of a viewer.
pub struct Viewer {
    /// The grey window mapped to 0..255.
    pub window: (f32, f32),
    /// In-plane downsampling factor (1: full resolution).
    pub factor: usize,
    /// `[ni, nj, nk]` of the embedded volumes.
    pub dims: [usize; 3],
    /// World position (mm) the viewer starts at.
    pub start_mm: [f64; 3],
    image_nii_gz: Vec<u8>,
    label_nii_gz: Vec<u8>,
}

impl Viewer {
    /// Windows the image to 8 bits and, when it has more than `max_voxels` voxels, averages
    /// blocks of f x f voxels in-plane (the label takes each block's majority) with the
    /// smallest f that fits.
    pub fn new(
        image: &Volume,
        label: &Volume,
        window: (f32, f32),
        max_voxels: usize,
    ) -> Result<Self, String> {
        let img = image.image().ok_or("the viewer needs an image stream")?;
        let lab = label.label().ok_or("the viewer needs a label stream")?;
        let [nk, nj, ni] = image.header.shape;
        let f = factor(image.header.shape, max_voxels);
        let dims = [ni.div_ceil(f), nj.div_ceil(f), nk];
        let grey = downsample_image(img.view(), f, window);
        let labels = downsample_label(lab.view(), f);
        let affine = downsampled_affine(&image.header.affine, f);
        let [i, j, k] = start(lab.view()).map(|v| v as f64);
        let a = &image.header.affine;
        let start_mm = [0, 1, 2].map(|r| a[r][0] * i + a[r][1] * j + a[r][2] * k + a[r][3]);
        Ok(Viewer {
            window,
            factor: f,
            dims,
            start_mm,
            image_nii_gz: nifti_gz(&grey, dims, &affine)?,
            label_nii_gz: nifti_gz(&labels, dims, &affine)?,
        })
    }

    /// Appends the viewer's section and scripts to a page (its CSS is [`STYLE`]).
    pub fn html(&self, s: &mut String) {
        let b64 = base64::engine::general_purpose::STANDARD;
        let [ni, nj, nk] = self.dims;
        let (lo, hi) = self.window;
        s.push_str(
            "<h2 class=\"viewer\">Viewer</h2>\n<section id=\"viewer\" data-state=\"loading\">\n<p>",
        );
        for (name, c) in [("liver", draw::GREEN), ("lesion", draw::BLUE)] {
            let _ = write!(
                s,
                "<span class=\"sw\" style=\"background:rgb({},{},{})\"></span>{name}",
                c[0], c[1], c[2]
            );
        }
        let _ = write!(
            s,
            "</p>\n<p>The predicted segmentation over the image in three planes (radiological \
             view) and in 3D. Scroll over a plane to move through its slices, click to move the \
             crosshair, drag in 3D to rotate; untick \
             <i>liver in 3D</i> to see the lesions inside. Image: {ni} x {nj} x {nk} voxels{}, grey window \
             [{lo}, {hi}] in 256 levels. The PNG slices below are the printable version.</p>\n",
            if self.factor > 1 {
                format!(
                    " (1/{} of the in-plane resolution, blocks averaged; labels by majority)",
                    self.factor
                )
            } else {
                String::new()
            }
        );
        s.push_str(
            "<div class=\"vw\"><div class=\"vp\"><canvas id=\"viewer-planes\"></canvas></div>\
             <div class=\"v3\"><canvas id=\"viewer-3d\"></canvas></div></div>\n\
             <p><label><input type=\"checkbox\" id=\"viewer-liver3d\" checked> liver in 3D</label> \
             <span id=\"viewer-status\" style=\"margin-left:2em\">The viewer needs JavaScript and WebGL2; starting...</span></p>\n",
        );
        let _ = writeln!(
            s,
            "<p class=\"vn\">Viewer: NiiVue {} (BSD-2-Clause, Copyright the NiiVue authors), \
             inlined.</p>\n</section>",
            esc(NIIVUE_VERSION)
        );
        let data = serde_json::json!({
            "liver": draw::GREEN,
            "lesion": draw::BLUE,
            "factor": self.factor,
            "start_mm": self.start_mm,
        });
        let _ = writeln!(
            s,
            "<script type=\"application/json\" id=\"viewer-data\">{data}</script>\n\
             <script type=\"text/plain\" id=\"viewer-image\">{}</script>\n\
             <script type=\"text/plain\" id=\"viewer-label\">{}</script>",
            b64.encode(&self.image_nii_gz),
            b64.encode(&self.label_nii_gz)
        );
        // Records uncaught errors and console errors in <html data-js-errors>, where a DOM
        // dump (tests/report.rs) sees them; runs before the deferred module below.
        s.push_str(
            "<script>(()=>{const d=document.documentElement,add=m=>{d.dataset.jsErrors=\
             (d.dataset.jsErrors||'')+m+'\\n'};addEventListener('error',e=>add(e.message));\
             addEventListener('unhandledrejection',e=>add(String(e.reason)));\
             const ce=console.error;console.error=(...a)=>{add('console.error: '+a.join(' '));\
             ce.apply(console,a)}})();</script>\n<script type=\"module\">\n",
        );
        s.push_str(NIIVUE_JS.trim_end());
        s.push('\n');
        s.push_str(VIEWER_JS);
        s.push_str("</script>\n");
    }

    /// Bytes of the embedded data (gzipped NIfTI, before base64).
    pub fn data_bytes(&self) -> usize {
        self.image_nii_gz.len() + self.label_nii_gz.len()
    }
}

/// Where the viewer starts: the centroid, on its slice of largest area, of the lesions, else of
/// the liver (label >= 1), else the volume's centre.
fn start(lab: ArrayView3<u8>) -> [usize; 3] {
    let [nk, nj, ni] = [
        lab.len_of(Axis(0)),
        lab.len_of(Axis(1)),
        lab.len_of(Axis(2)),
    ];
    for class in [|v: u8| v == 2, |v: u8| v >= 1] {
        let area = |k: usize| {
            lab.index_axis(Axis(0), k)
                .iter()
                .filter(|&&v| class(v))
                .count()
        };
        let Some(k) = (0..nk).max_by_key(|&k| (area(k), std::cmp::Reverse(k))) else {
            break;
        };
        let n = area(k);
        if n == 0 {
            continue;
        }
        let (mut si, mut sj) = (0, 0);
        for ((j, i), &v) in lab.index_axis(Axis(0), k).indexed_iter() {
            if class(v) {
                (si, sj) = (si + i, sj + j);
            }
        }
        return [si / n, sj / n, k];
    }
    [ni / 2, nj / 2, nk / 2]
}

/// The smallest in-plane factor that brings the volume within `max_voxels` (at most the
/// in-plane size, where one voxel per slice is left).
fn factor(shape: [usize; 3], max_voxels: usize) -> usize {
    let [nk, nj, ni] = shape;
    let most = ni.max(nj).max(1);
    (1..=most)
        .find(|&f| ni.div_ceil(f) * nj.div_ceil(f) * nk <= max_voxels)
        .unwrap_or(most)
}

/// The image windowed to 0..255 and averaged over f x f blocks (non-finite values skipped;
/// a block without finite values is 0).
fn downsample_image(img: ArrayView3<f32>, f: usize, (lo, hi): (f32, f32)) -> Vec<u8> {
    let scale = 255.0 / (hi - lo);
    let grey = |v: f32| ((v - lo) * scale).clamp(0.0, 255.0);
    blocks(img, f, |block| {
        let (mut sum, mut n) = (0.0f32, 0u32);
        for v in block.filter(|v| v.is_finite()) {
            sum += grey(v);
            n += 1;
        }
        if n == 0 {
            0
        } else {
            (sum / n as f32).round() as u8
        }
    })
}

/// The label for display (0 background, 1 liver, 2 lesion: any other non-zero value is liver,
/// as `stats` counts it), each f x f block's majority, ties to the higher label.
fn downsample_label(lab: ArrayView3<u8>, f: usize) -> Vec<u8> {
    blocks(lab, f, |block| {
        let mut n = [0usize; 3];
        for v in block {
            n[match v {
                0 => 0,
                2 => 2,
                _ => 1,
            }] += 1;
        }
        (0..3u8).max_by_key(|&c| n[c as usize]).unwrap_or(0)
    })
}

/// Applies `reduce` to each f x f in-plane block, in NIfTI order (i fastest, then j, then k).
fn blocks<T: Copy + Sync>(
    a: ArrayView3<T>,
    f: usize,
    reduce: impl Fn(&mut dyn Iterator<Item = T>) -> u8 + Sync,
) -> Vec<u8> {
    use rayon::prelude::*;
    let [nk, nj, ni] = [a.len_of(Axis(0)), a.len_of(Axis(1)), a.len_of(Axis(2))];
    let (bj, bi) = (nj.div_ceil(f), ni.div_ceil(f));
    let slices: Vec<Vec<u8>> = (0..nk)
        .into_par_iter()
        .map(|k| {
            let s = a.index_axis(Axis(0), k);
            let mut out = Vec::with_capacity(bj * bi);
            for j in 0..bj {
                for i in 0..bi {
                    let block = s.slice(ndarray::s![
                        j * f..((j + 1) * f).min(nj),
                        i * f..((i + 1) * f).min(ni)
                    ]);
                    out.push(reduce(&mut block.iter().copied()));
                }
            }
            out
        })
        .collect();
    slices.concat()
}

/// The voxel-to-world affine of the f x f block grid: block (i, j) sits at the centre of its
/// voxels.
fn downsampled_affine(a: &[[f64; 4]; 4], f: usize) -> [[f64; 4]; 4] {
    let mut b = *a;
    let shift = (f as f64 - 1.0) / 2.0;
    for row in b.iter_mut().take(3) {
        row[3] += shift * (row[0] + row[1]);
        row[0] *= f as f64;
        row[1] *= f as f64;
    }
    b
}

/// A gzipped single-file NIfTI-1 volume of unsigned bytes with the affine as its sform.
fn nifti_gz(
    data: &[u8],
    [ni, nj, nk]: [usize; 3],
    affine: &[[f64; 4]; 4],
) -> Result<Vec<u8>, String> {
    if data.len() != ni * nj * nk {
        return Err(format!(
            "viewer volume has {} voxels, expected {ni} x {nj} x {nk}",
            data.len()
        ));
    }
    let dim = |n: usize| {
        i16::try_from(n).map_err(|_| {
            format!("the viewer cannot embed a dimension of {n} voxels (NIfTI-1 allows 32767)")
        })
    };
    let mut h = vec![0u8; 352];
    let put_i16 = |h: &mut [u8], at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut [u8], at: usize, v: f32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    for (n, v) in [3, dim(ni)?, dim(nj)?, dim(nk)?, 1, 1, 1, 1]
        .into_iter()
        .enumerate()
    {
        put_i16(&mut h, 40 + 2 * n, v);
    }
    put_i16(&mut h, 70, 2); // datatype: unsigned char
    put_i16(&mut h, 72, 8); // bitpix
    let col = |c: usize| {
        (0..3)
            .map(|r| affine[r][c] * affine[r][c])
            .sum::<f64>()
            .sqrt() as f32
    };
    for (n, v) in [1.0, col(0), col(1), col(2), 1.0, 1.0, 1.0, 1.0]
        .into_iter()
        .enumerate()
    {
        put_f32(&mut h, 76 + 4 * n, v);
    }
    put_f32(&mut h, 108, 352.0); // vox_offset
    put_f32(&mut h, 112, 1.0); // scl_slope
    put_f32(&mut h, 124, 255.0); // cal_max
    h[123] = 10; // xyzt_units: mm, s
    put_i16(&mut h, 254, 2); // sform_code: aligned
    for (r, row) in affine.iter().take(3).enumerate() {
        for (c, v) in row.iter().enumerate() {
            put_f32(&mut h, 280 + 16 * r + 4 * c, *v as f32);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    let mut gz = GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::new(6));
    gz.write_all(&h)
        .and_then(|_| gz.write_all(data))
        .and_then(|_| gz.finish())
        .map_err(|e| format!("cannot compress the viewer volume: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn factor_fits_the_budget() {
        assert_eq!(factor([129, 512, 512], DEFAULT_MAX_VOXELS), 2);
        assert_eq!(factor([129, 512, 512], 512 * 512 * 129), 1);
        assert_eq!(factor([10, 4, 4], 1), 4);
    }

    #[test]
    fn blocks_average_and_vote() {
        // One slice, 3 x 3, factor 2: blocks of 2x2, 2x1, 1x2, 1x1 voxels.
        let img = Array3::from_shape_vec(
            (1, 3, 3),
            vec![0., 100., 50., 100., 100., 0., f32::NAN, 0., 100.],
        )
        .unwrap();
        assert_eq!(
            downsample_image(img.view(), 2, (0.0, 100.0)),
            [191, 64, 0, 255]
        );
        let lab = Array3::from_shape_vec((1, 3, 3), vec![0, 1, 2, 2, 0, 3, 1, 0, 0]).unwrap();
        // Block (0,0): 0,1,2,0 -> 0 (two of four); (0,1): 2, 3->1 tie -> 2; (1,0): 1, 0 tie -> 1.
        assert_eq!(downsample_label(lab.view(), 2), [0, 2, 1, 0]);
    }

    #[test]
    fn starts_on_the_largest_lesion_slice() {
        let mut lab = Array3::<u8>::zeros((4, 6, 6));
        lab.slice_mut(ndarray::s![0..4, 0..6, 0..6]).fill(1);
        assert_eq!(start(lab.view()), [2, 2, 0]);
        lab[[2, 1, 3]] = 2;
        lab[[2, 1, 5]] = 2;
        lab[[3, 4, 4]] = 2;
        assert_eq!(start(lab.view()), [4, 1, 2]);
        assert_eq!(start(Array3::<u8>::zeros((4, 6, 6)).view()), [3, 3, 2]);
    }

    #[test]
    fn affine_and_header() {
        let mut a = [[0.0; 4]; 4];
        (a[0][0], a[1][1], a[2][2], a[3][3]) = (-0.5, 0.5, 2.0, 1.0);
        a[0][3] = 10.0;
        let b = downsampled_affine(&a, 2);
        assert_eq!(
            [b[0][0], b[1][1], b[2][2], b[0][3], b[1][3]],
            [-1.0, 1.0, 2.0, 9.75, 0.25]
        );
        let gz = nifti_gz(&[7; 8], [2, 2, 2], &b).unwrap();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
        assert_eq!(raw.len(), 352 + 8);
        assert_eq!(&raw[344..348], b"n+1\0");
        assert_eq!(f32::from_le_bytes(raw[80..84].try_into().unwrap()), 1.0);
        assert_eq!(f32::from_le_bytes(raw[280..284].try_into().unwrap()), -1.0);
        assert!(nifti_gz(&[0; 3], [2, 2, 2], &b).is_err());
    }
}
