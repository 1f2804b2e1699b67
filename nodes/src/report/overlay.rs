//! `overlay`: PNG images of chosen slices with the segmentation drawn on the image (Figure 7
//! colours of Christ et al. 2017 against a ground truth, outlines without one), in
//! radiological orientation with square pixels. The `report` node embeds the same images.

use ndarray::{Array2, Array3, ArrayView2, Axis};
use serde::Deserialize;
use std::path::PathBuf;
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::StreamType;
use voxflow_runtime::{
    BuildEnv, Header, Node, NodeCtx, NodeDecl, NodeError, NodeParams, TypedKind, Volume,
};

pub struct Overlay;

const DOCS: &str = r#"
Gathers `image` and `label` (0 background, 1 liver, 2 lesion; optional `truth`, same grid)
and writes one PNG per chosen slice into `dir` as `slice_K.png` (K = slice index, 3 digits;
the PNG's `Comment` text says why it was chosen).

- Slices: with `largest`, the slice with the largest liver area and the one with the largest
  lesion area; plus every `every`-th slice from the first to the last slice with liver (0: none).
  Areas count the prediction, or prediction and truth together when truth is given. Without
  any liver the middle slice is drawn.
- With `truth`, pixels are filled as in the paper's Figure 7: green correct liver, yellow wrong
  liver (false positive or negative), blue correct lesion, red wrong lesion (lesion colours win
  over liver colours), blended with `alpha`. Without truth, the outlines of the predicted liver
  (green) and lesions (blue) are drawn.
- Grey values: `window` [lo, hi] if set, else the stream's declared value range (e.g. the
  `hu_window` window), else the 0.5th to 99.5th percentile of the volume.
- Orientation comes from the affine (NIfTI world axes: x towards the patient's right, y
  anterior, z superior): the in-plane voxel axes are matched to the world axes they point along, and the image is transposed and flipped so that an axial slice shows the
  patient's right on the image's left and anterior up (coronal: right on the left, superior up;
  sagittal: anterior on the left, superior up). Letters at the edges name the patient
  directions and the bottom-left corner states them (e.g. `R LEFT A UP`); the top-left corner
  gives the slice index.
- Pixels are square: the slice is resampled (image bilinear, labels nearest) so that its longer
  side in mm spans `size` pixels.
"#;

/// How overlay images are chosen and drawn (params shared with `report`).
#[derive(Clone, Debug, PartialEq)]
pub struct OverlaySpec {
    pub every: usize,
    pub largest: bool,
    pub window: Option<(f32, f32)>,
    pub size: usize,
    pub alpha: f32,
}

/// The overlay params (shared with `report`, flattened into both).
#[derive(Clone, Debug, Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct OverlayParams {
    /// also draw every N-th slice through the liver (0: none)
    #[param(default = 10)]
    pub every: usize,
    /// draw the slices with the largest liver and lesion areas
    #[param(default = true)]
    pub largest: bool,
    /// grey window [lo, hi] (default: the stream's value range, else percentiles)
    pub window: Option<Vec<f32>>,
    /// pixels along the longer side of each image
    #[param(default = 512, min = 64, max = 4096)]
    pub size: usize,
    /// opacity of the colour fill (with truth)
    #[param(default = 0.5, min = 0, max = 1)]
    pub alpha: f32,
}

impl OverlayParams {
    /// The drawing settings; an error for a `window` that is not `[lo, hi]` with lo < hi.
    pub fn spec(&self) -> Result<OverlaySpec, String> {
        let window = match self.window.as_deref() {
            None => None,
            Some(&[lo, hi]) if lo < hi => Some((lo, hi)),
            Some(w) => return Err(format!("`window` must be [lo, hi] with lo < hi, got {w:?}")),
        };
        Ok(OverlaySpec {
            every: self.every,
            largest: self.largest,
            window,
            size: self.size,
            alpha: self.alpha,
        })
    }

    /// Checks the `window` param.
    pub fn check(&self) -> Vec<(String, String)> {
        match self.spec() {
            Err(e) => vec![("window".into(), e)],
            Ok(_) => vec![],
        }
    }
}

/// A slice to draw and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Picked {
    pub k: usize,
    pub reasons: Vec<String>,
}

pub const LARGEST_LIVER: &str = "largest liver area";
pub const LARGEST_LESION: &str = "largest lesion area";

impl Picked {
    /// Picked for the largest liver or lesion area.
    pub fn largest(&self) -> bool {
        self.reasons
            .iter()
            .any(|r| r == LARGEST_LIVER || r == LARGEST_LESION)
    }
}

/// Chooses the slices to draw (see the node docs); sorted by `k`.
pub fn pick_slices(
    label: &Array3<u8>,
    truth: Option<&Array3<u8>>,
    spec: &OverlaySpec,
) -> Vec<Picked> {
    let nk = label.dim().0;
    let area = |pred: fn(u8) -> bool| -> Vec<usize> {
        (0..nk)
            .map(|k| {
                let p = label.index_axis(Axis(0), k);
                match truth {
                    Some(t) => p
                        .iter()
                        .zip(t.index_axis(Axis(0), k).iter())
                        .filter(|(&a, &b)| pred(a) || pred(b))
                        .count(),
                    None => p.iter().filter(|&&a| pred(a)).count(),
                }
            })
            .collect()
    };
    let liver = area(|v| v >= 1);
    let lesion = area(|v| v == 2);
    let mut picked: Vec<Picked> = Vec::new();
    let mut add = |k: usize, why: String| match picked.iter_mut().find(|p| p.k == k) {
        Some(p) => p.reasons.push(why),
        None => picked.push(Picked {
            k,
            reasons: vec![why],
        }),
    };
    let argmax = |a: &[usize]| {
        a.iter()
            .enumerate()
            .fold(None, |best: Option<(usize, usize)>, (k, &v)| match best {
                Some((_, b)) if b >= v => best,
                _ if v > 0 => Some((k, v)),
                _ => best,
            })
    };
    if spec.largest {
        if let Some((k, _)) = argmax(&liver) {
            add(k, LARGEST_LIVER.into());
        }
        if let Some((k, _)) = argmax(&lesion) {
            add(k, LARGEST_LESION.into());
        }
    }
    let first = liver.iter().position(|&a| a > 0);
    let last = liver.iter().rposition(|&a| a > 0);
    match (first, last) {
        (Some(k0), Some(k1)) if spec.every > 0 => {
            for k in (k0..=k1).step_by(spec.every) {
                add(k, format!("every {} slices through the liver", spec.every));
            }
        }
        (None, _) => add(nk / 2, "middle slice (no liver)".into()),
        _ => {}
    }
    picked.sort_by_key(|p| p.k);
    picked
}

/// What a pixel of the prediction is, compared with the truth (Figure 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    LiverCorrect,
    LiverWrong,
    LesionCorrect,
    LesionWrong,
}

/// Figure 7 classes; lesion outcomes take precedence over liver outcomes.
pub fn classify(pred: u8, truth: u8) -> Option<Class> {
    let (pl, tl) = (pred == 2, truth == 2);
    let (pv, tv) = (pred >= 1, truth >= 1);
    if pl && tl {
        Some(Class::LesionCorrect)
    } else if pl != tl {
        Some(Class::LesionWrong)
    } else if pv && tv {
        Some(Class::LiverCorrect)
    } else if pv != tv {
        Some(Class::LiverWrong)
    } else {
        None
    }
}

pub const GREEN: [u8; 3] = [0, 220, 0];
pub const YELLOW: [u8; 3] = [255, 230, 0];
pub const BLUE: [u8; 3] = [30, 100, 255];
pub const RED: [u8; 3] = [255, 0, 0];

impl Class {
    pub fn colour(self) -> [u8; 3] {
        match self {
            Class::LiverCorrect => GREEN,
            Class::LiverWrong => YELLOW,
            Class::LesionCorrect => BLUE,
            Class::LesionWrong => RED,
        }
    }
}

/// How a slice's array axes map onto the screen.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    /// Screen columns follow the row axis `j` (else the column axis `i`).
    pub transpose: bool,
    /// Reverse the array axis shown across the screen.
    pub flip_x: bool,
    /// Reverse the array axis shown down the screen.
    pub flip_y: bool,
    /// Patient direction letters at the left, right, top and bottom edges.
    pub edges: [char; 4],
}

/// The view of slices `k` of a volume with this affine (see the node docs).
pub fn view_of(affine: &[[f64; 4]; 4]) -> View {
    let col = |a: usize| [affine[0][a], affine[1][a], affine[2][a]];
    let dominant = |v: [f64; 3], skip: Option<usize>| {
        (0..3)
            .filter(|&w| Some(w) != skip)
            .max_by(|&a, &b| v[a].abs().total_cmp(&v[b].abs()))
            .expect("three axes")
    };
    let (ci, cj) = (col(0), col(1));
    let wi = dominant(ci, None);
    let wj = dominant(cj, Some(wi));
    // World axes (RAS+): x to the patient's right, y anterior, z superior. The screen shows
    // x across (else y) and y down (else z), each running towards its negative end: screen
    // right = patient left (or posterior), screen down = posterior (or inferior).
    let (hx, vy) = if wi == 0 || wj == 0 {
        (0, if wi == 1 || wj == 1 { 1 } else { 2 })
    } else {
        (1, 2)
    };
    let transpose = wi != hx;
    let (ax, ay) = if transpose { (cj, ci) } else { (ci, cj) };
    let positive = |w: usize| ['R', 'A', 'S'][w];
    let negative = |w: usize| ['L', 'P', 'I'][w];
    View {
        transpose,
        flip_x: ax[hx] > 0.0,
        flip_y: ay[vy] > 0.0,
        edges: [positive(hx), negative(hx), positive(vy), negative(vy)],
    }
}

/// An RGB image, rows top to bottom.
#[derive(Clone, Debug, PartialEq)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Rgb {
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let o = 3 * (y * self.width + x);
        [self.data[o], self.data[o + 1], self.data[o + 2]]
    }
    fn set(&mut self, x: usize, y: usize, c: [u8; 3]) {
        let o = 3 * (y * self.width + x);
        self.data[o..o + 3].copy_from_slice(&c);
    }

    /// PNG bytes with a `Comment` text chunk.
    pub fn png(&self, comment: &str) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.add_text_chunk("Comment".into(), comment.into())
            .map_err(|e| e.to_string())?;
        let mut w = enc.write_header().map_err(|e| e.to_string())?;
        w.write_image_data(&self.data).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// One slice on screen: the source position (array row, column, as fractions of pixels) of
/// every screen pixel.
struct Grid {
    width: usize,
    height: usize,
    /// Per screen column / row: the array coordinate along the axis shown there.
    xs: Vec<f64>,
    ys: Vec<f64>,
    transpose: bool,
}

impl Grid {
    fn new(dims: (usize, usize), spacing_ji: [f64; 2], view: &View, size: usize) -> Grid {
        let (nj, ni) = dims;
        let [dj, di] = spacing_ji;
        let ((nx, dx), (ny, dy)) = if view.transpose {
            ((nj, dj), (ni, di))
        } else {
            ((ni, di), (nj, dj))
        };
        let (wx, wy) = (nx as f64 * dx, ny as f64 * dy);
        let px = wx.max(wy) / size as f64;
        let width = ((wx / px).round() as usize).max(1);
        let height = ((wy / px).round() as usize).max(1);
        let coords = |n_out: usize, n: usize, d: f64, flip: bool| -> Vec<f64> {
            (0..n_out)
                .map(|o| {
                    let a = ((o as f64 + 0.5) * px / d - 0.5).clamp(0.0, (n - 1) as f64);
                    if flip {
                        (n - 1) as f64 - a
                    } else {
                        a
                    }
                })
                .collect()
        };
        Grid {
            width,
            height,
            xs: coords(width, nx, dx, view.flip_x),
            ys: coords(height, ny, dy, view.flip_y),
            transpose: view.transpose,
        }
    }

    /// Array `(j, i)` of screen pixel `(x, y)`, unrounded.
    fn at(&self, x: usize, y: usize) -> (f64, f64) {
        if self.transpose {
            (self.xs[x], self.ys[y])
        } else {
            (self.ys[y], self.xs[x])
        }
    }

    fn nearest<T: Copy + Default>(&self, a: ArrayView2<T>) -> Array2<T> {
        Array2::from_shape_fn((self.height, self.width), |(y, x)| {
            let (j, i) = self.at(x, y);
            a[[j.round() as usize, i.round() as usize]]
        })
    }

    fn bilinear(&self, a: ArrayView2<f32>) -> Array2<f32> {
        let (nj, ni) = a.dim();
        Array2::from_shape_fn((self.height, self.width), |(y, x)| {
            let (j, i) = self.at(x, y);
            let (j0, i0) = (j.floor() as usize, i.floor() as usize);
            let (j1, i1) = ((j0 + 1).min(nj - 1), (i0 + 1).min(ni - 1));
            let (fj, fi) = ((j - j0 as f64) as f32, (i - i0 as f64) as f32);
            let top = a[[j0, i0]] * (1.0 - fi) + a[[j0, i1]] * fi;
            let bottom = a[[j1, i0]] * (1.0 - fi) + a[[j1, i1]] * fi;
            top * (1.0 - fj) + bottom * fj
        })
    }
}

/// Draws one slice (see the node docs). `spacing_ji` = `[dj, di]` in mm.
pub fn render(
    image: ArrayView2<f32>,
    label: ArrayView2<u8>,
    truth: Option<ArrayView2<u8>>,
    spacing_ji: [f64; 2],
    view: &View,
    window: (f32, f32),
    spec: &OverlaySpec,
) -> Rgb {
    let grid = Grid::new(image.dim(), spacing_ji, view, spec.size);
    let grey = grid.bilinear(image);
    let pred = grid.nearest(label);
    let (lo, hi) = window;
    let mut out = Rgb {
        width: grid.width,
        height: grid.height,
        data: grey
            .iter()
            .flat_map(|&v| {
                let g = (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() as u8;
                [g, g, g]
            })
            .collect(),
    };
    match truth {
        Some(t) => {
            let t = grid.nearest(t);
            for ((y, x), &p) in pred.indexed_iter() {
                if let Some(c) = classify(p, t[[y, x]]) {
                    let g = out.pixel(x, y);
                    let c = c.colour();
                    out.set(
                        x,
                        y,
                        [0, 1, 2].map(|n| {
                            (g[n] as f32 * (1.0 - spec.alpha) + c[n] as f32 * spec.alpha).round()
                                as u8
                        }),
                    );
                }
            }
        }
        None => {
            let width = (spec.size / 256).max(1);
            outline(&mut out, &pred, |v| v >= 1, width, GREEN);
            outline(&mut out, &pred, |v| v == 2, width, BLUE);
        }
    }
    out
}

/// Paints the pixels of a mask that lie within `width` pixels of its edge.
fn outline(img: &mut Rgb, label: &Array2<u8>, inside: fn(u8) -> bool, width: usize, c: [u8; 3]) {
    let (h, w) = label.dim();
    let outside = |y: isize, x: isize| {
        y < 0
            || x < 0
            || y >= h as isize
            || x >= w as isize
            || !inside(label[[y as usize, x as usize]])
    };
    for ((y, x), &v) in label.indexed_iter() {
        if !inside(v) {
            continue;
        }
        let (y, x) = (y as isize, x as isize);
        let edge = (1..=width as isize).any(|d| {
            outside(y - d, x) || outside(y + d, x) || outside(y, x - d) || outside(y, x + d)
        });
        if edge {
            img.set(x as usize, y as usize, c);
        }
    }
}

/// 5x7 glyphs (rows top to bottom, bit 4 = leftmost pixel) of the characters the images use.
fn glyph(ch: char) -> [u8; 7] {
    match ch {
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        _ => [0; 7],
    }
}

/// Writes white text with a black shadow; `(x, y)` is the top-left corner.
fn text(img: &mut Rgb, s: &str, x: usize, y: usize, scale: usize) {
    for (shadow, colour) in [(1, [0, 0, 0]), (0, [255, 255, 255])] {
        for (n, ch) in s.chars().enumerate() {
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..5 {
                    if bits & (16 >> col) == 0 {
                        continue;
                    }
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let px = x + (n * 6 + col) * scale + dx + shadow;
                            let py = y + row * scale + dy + shadow;
                            if px < img.width && py < img.height {
                                img.set(px, py, colour);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Adds the slice index, the edge letters and the orientation statement.
fn annotate(img: &mut Rgb, k: usize, view: &View, size: usize) {
    let scale = (size / 256).max(1);
    let (cw, ch) = (6 * scale, 7 * scale);
    let m = 2 * scale;
    let (w, h) = (img.width, img.height);
    let [l, r, t, b] = view.edges;
    text(img, &format!("SLICE {k}"), m, m, scale);
    text(img, &l.to_string(), m, (h.saturating_sub(ch)) / 2, scale);
    text(
        img,
        &r.to_string(),
        w.saturating_sub(cw + m),
        (h.saturating_sub(ch)) / 2,
        scale,
    );
    text(img, &t.to_string(), (w.saturating_sub(cw)) / 2, m, scale);
    text(
        img,
        &b.to_string(),
        (w.saturating_sub(cw)) / 2,
        h.saturating_sub(ch + m),
        scale,
    );
    text(
        img,
        &format!("{l} LEFT {t} UP"),
        m,
        h.saturating_sub(ch + m),
        scale,
    );
}

/// The grey window of a volume (see the node docs).
pub fn display_window(image: &Volume, spec: &OverlaySpec) -> (f32, f32) {
    if let Some(w) = spec.window {
        return w;
    }
    if let Some((lo, hi)) = image.header.value_range.filter(|(lo, hi)| lo < hi) {
        return (lo as f32, hi as f32);
    }
    let a = image.image().expect("image volume");
    let step = (a.len() / 1_000_000).max(1);
    let mut v: Vec<f32> = a
        .iter()
        .step_by(step)
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(f32::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    let (lo, hi) = (q(0.005), q(0.995));
    if lo < hi {
        (lo, hi)
    } else {
        (lo, lo + 1.0)
    }
}

/// A drawn slice: what was picked and its PNG.
pub struct Drawn {
    pub picked: Picked,
    pub png: Vec<u8>,
}

/// Checks the inputs of `overlay` and `report`: an image and label volumes on one grid.
pub fn check_inputs(image: &Volume, label: &Volume, truth: Option<&Volume>) -> Result<(), String> {
    if image.image().is_none() {
        return Err(format!(
            "input `image` carries a {} stream, this node needs image",
            image.header.stream_type
        ));
    }
    for (v, name) in [(Some(label), "label"), (truth, "truth")] {
        if let Some(v) = v {
            if v.label().is_none() {
                return Err(format!(
                    "input `{name}` carries a {} stream, this node needs label",
                    v.header.stream_type
                ));
            }
            image.header.check_same_geometry("image", &v.header, name)?;
        }
    }
    Ok(())
}

/// Picks and draws the slices of a case (after [`check_inputs`]).
pub fn draw(
    image: &Volume,
    label: &Volume,
    truth: Option<&Volume>,
    spec: &OverlaySpec,
) -> Result<Vec<Drawn>, String> {
    let (img, lab) = (
        image.image().expect("checked"),
        label.label().expect("checked"),
    );
    let tru = truth.map(|t| t.label().expect("checked"));
    let view = view_of(&image.header.affine);
    let window = display_window(image, spec);
    let h: &Header = &image.header;
    let spacing = [h.spacing[1], h.spacing[2]];
    pick_slices(lab, tru, spec)
        .into_iter()
        .map(|picked| {
            let k = picked.k;
            let mut rgb = render(
                img.index_axis(Axis(0), k),
                lab.index_axis(Axis(0), k),
                tru.map(|t| t.index_axis(Axis(0), k)),
                spacing,
                &view,
                window,
                spec,
            );
            annotate(&mut rgb, k, &view, spec.size);
            let png = rgb.png(&format!("slice {k}: {}", picked.reasons.join(", ")))?;
            Ok(Drawn { picked, png })
        })
        .collect()
}

/// Gathers `image`, `label` and, when connected, `truth`.
pub fn gather_case(ctx: &mut NodeCtx) -> Result<(Volume, Volume, Option<Volume>), NodeError> {
    let with_truth = ctx.has_input("truth");
    let ports: &[&str] = if with_truth {
        &["image", "label", "truth"]
    } else {
        &["image", "label"]
    };
    let mut v = ctx.gather_many(ports)?;
    let truth = with_truth.then(|| v.pop().expect("three volumes"));
    let label = v.pop().expect("label");
    let image = v.pop().expect("image");
    check_inputs(&image, &label, truth.as_ref())?;
    Ok((image, label, truth))
}

/// The input ports of `overlay` and `report`.
pub fn declare_inputs(d: NodeDecl) -> NodeDecl {
    d.input(
        "image",
        PortType::Fixed(StreamType::Image),
        "the image to draw on",
    )
    .input(
        "label",
        PortType::Fixed(StreamType::Label),
        "predicted labels: 0 background, 1 liver, 2 lesion",
    )
    .optional_input(
        "truth",
        PortType::Fixed(StreamType::Label),
        "ground-truth labels on the same grid",
    )
}

/// Params of `overlay`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct OverlayNodeParams {
    #[serde(flatten)]
    #[param(flatten)]
    pub overlay: OverlayParams,
    /// output folder for the PNG files
    #[param(writes)]
    pub dir: PathBuf,
}

impl TypedKind for Overlay {
    type Params = OverlayNodeParams;

    fn declare(&self) -> NodeDecl {
        let d = NodeDecl::new(
            "overlay",
            "PNG images of chosen slices with the liver and lesion segmentation drawn on them",
        )
        .docs(DOCS);
        declare_inputs(d)
    }

    fn check_params(&self, p: &OverlayNodeParams) -> Vec<(String, String)> {
        p.overlay.check()
    }

    fn create(&self, p: OverlayNodeParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(OverlayNode {
            spec: p.overlay.spec()?,
            dir: p.dir,
        }))
    }
}

struct OverlayNode {
    spec: OverlaySpec,
    dir: PathBuf,
}

/// File name of a drawn slice.
pub fn file_name(k: usize) -> String {
    format!("slice_{k:03}.png")
}

impl Node for OverlayNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let (image, label, truth) = gather_case(ctx)?;
        for d in draw(&image, &label, truth.as_ref(), &self.spec)? {
            let dest = self.dir.join(file_name(d.picked.k));
            let tmp = ctx.output_file(&dest)?;
            std::fs::write(&tmp, &d.png)
                .map_err(|e| NodeError::msg(format!("cannot write {}: {e}", dest.display())))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::s;
    use voxflow_runtime::stream::VolumeData;

    fn spec() -> OverlaySpec {
        OverlaySpec {
            every: 0,
            largest: true,
            window: Some((0.0, 100.0)),
            size: 256,
            alpha: 1.0,
        }
    }

    #[test]
    fn figure_7_classes_and_colours() {
        use Class::*;
        assert_eq!(classify(0, 0), None);
        assert_eq!(classify(1, 1), Some(LiverCorrect));
        assert_eq!(classify(1, 0), Some(LiverWrong));
        assert_eq!(classify(0, 1), Some(LiverWrong));
        assert_eq!(classify(2, 2), Some(LesionCorrect));
        assert_eq!(classify(2, 1), Some(LesionWrong));
        assert_eq!(classify(1, 2), Some(LesionWrong));
        assert_eq!(classify(2, 0), Some(LesionWrong));
        // Hues: green, yellow (red + green), blue, red.
        let [r, g, b] = LiverCorrect.colour();
        assert!(g > 200 && r < 50 && b < 50);
        let [r, g, b] = LiverWrong.colour();
        assert!(r > 200 && g > 200 && b < 50);
        let [r, g, b] = LesionCorrect.colour();
        assert!(b > 200 && r < 50 && g < 150);
        let [r, g, b] = LesionWrong.colour();
        assert!(r > 200 && g < 50 && b < 50);
    }

    /// Array rows down and columns across the screen, no flips.
    const PLAIN: View = View {
        transpose: false,
        flip_x: false,
        flip_y: false,
        edges: ['R', 'L', 'A', 'P'],
    };

    /// `render` with the grey window [0, 1].
    fn paint(
        img: &Array2<f32>,
        p: &Array2<u8>,
        t: Option<&Array2<u8>>,
        spacing: [f64; 2],
        view: &View,
        sp: &OverlaySpec,
    ) -> Rgb {
        render(
            img.view(),
            p.view(),
            t.map(|t| t.view()),
            spacing,
            view,
            (0.0, 1.0),
            sp,
        )
    }

    /// Four 10x10 squares, one per class, on a black 40x40 slice with 1 mm pixels.
    #[test]
    fn rendered_colours_with_truth() {
        let img = Array2::<f32>::zeros((40, 40));
        let mut p = Array2::<u8>::zeros((40, 40));
        let mut t = Array2::<u8>::zeros((40, 40));
        p.slice_mut(s![0..10, 0..10]).fill(1);
        t.slice_mut(s![0..10, 0..10]).fill(1); // correct liver
        p.slice_mut(s![0..10, 20..30]).fill(1); // liver false positive
        p.slice_mut(s![20..30, 0..10]).fill(2);
        t.slice_mut(s![20..30, 0..10]).fill(2); // correct lesion
        t.slice_mut(s![20..30, 20..30]).fill(2); // missed lesion
        let view = PLAIN;
        let sp = OverlaySpec { size: 40, ..spec() };
        let out = paint(&img, &p, Some(&t), [1.0, 1.0], &view, &sp);
        assert_eq!((out.width, out.height), (40, 40));
        assert_eq!(out.pixel(5, 5), GREEN);
        assert_eq!(out.pixel(25, 5), YELLOW);
        assert_eq!(out.pixel(5, 25), BLUE);
        assert_eq!(out.pixel(25, 25), RED);
        assert_eq!(out.pixel(15, 15), [0, 0, 0]);
        // Half opacity blends with the grey value.
        let img = Array2::<f32>::from_elem((40, 40), 1.0);
        let sp = OverlaySpec { alpha: 0.5, ..sp };
        let out = paint(&img, &p, Some(&t), [1.0, 1.0], &view, &sp);
        assert_eq!(out.pixel(25, 25), [255, 128, 128]);
    }

    #[test]
    fn outlines_without_truth() {
        let img = Array2::<f32>::zeros((40, 40));
        let mut p = Array2::<u8>::zeros((40, 40));
        p.slice_mut(s![5..35, 5..35]).fill(1);
        p.slice_mut(s![15..25, 15..25]).fill(2);
        let view = view_of(&Header::new(StreamType::Image, [1, 40, 40], [1.0; 3]).affine);
        let sp = OverlaySpec { size: 40, ..spec() };
        let out = paint(&img, &p, None, [1.0, 1.0], &view, &sp);
        assert_eq!(out.pixel(5, 20), GREEN);
        assert_eq!(out.pixel(10, 20), [0, 0, 0]);
        assert_eq!(out.pixel(15, 20), BLUE);
        assert_eq!(out.pixel(20, 20), [0, 0, 0]);
    }

    fn affine(cols: [[f64; 3]; 3]) -> [[f64; 4]; 4] {
        let mut a = [[0.0; 4]; 4];
        for (c, v) in cols.iter().enumerate() {
            for r in 0..3 {
                a[r][c] = v[r];
            }
        }
        a[3][3] = 1.0;
        a
    }

    /// In-plane axes along x and y with these signs, optionally swapped (i along y).
    fn eye(sx: f64, sy: f64, swap: bool) -> [[f64; 4]; 4] {
        let (ci, cj) = ([sx, 0.0, 0.0], [0.0, sy, 0.0]);
        let (ci, cj) = if swap { (cj, ci) } else { (ci, cj) };
        affine([ci, cj, [0.0, 0.0, 1.0]])
    }

    /// A marker at the patient's right-anterior corner must land top-left on screen, whatever
    /// the voxel order of the file.
    #[test]
    fn radiological_orientation() {
        // (affine columns for i, j, k; array (j, i) of the right-anterior voxel)
        let n = 8;
        let cases = [
            // Axis codes RAS: i towards the patient's right, j anterior.
            (eye(1.0, 1.0, false), (n - 1, n - 1)),
            // RPS: i right, j posterior.
            (eye(1.0, -1.0, false), (0, n - 1)),
            // LPS, as the real scans here and the phantom: i left, j posterior.
            (eye(-1.0, -1.0, false), (0, 0)),
            // LAS: i left, j anterior.
            (eye(-1.0, 1.0, false), (n - 1, 0)),
            // Transposed: i anterior, j right.
            (eye(1.0, 1.0, true), (n - 1, n - 1)),
        ];
        for (a, (j, i)) in cases {
            let view = view_of(&a);
            assert_eq!(view.edges, ['R', 'L', 'A', 'P'], "{a:?}");
            let img = Array2::<f32>::zeros((n, n));
            let mut p = Array2::<u8>::zeros((n, n));
            p[[j, i]] = 1;
            let mut t = Array2::<u8>::zeros((n, n));
            t[[j, i]] = 1;
            let sp = OverlaySpec { size: 64, ..spec() };
            let out = paint(&img, &p, Some(&t), [1.0, 1.0], &view, &sp);
            assert_eq!(out.pixel(2, 2), GREEN, "{a:?} {view:?}");
            assert_eq!(out.pixel(61, 61), [0, 0, 0], "{a:?}");
        }
        // A coronal slice (i along x, j along z): right on the left, superior up.
        let v = view_of(&affine([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]));
        assert_eq!(v.edges, ['R', 'L', 'S', 'I']);
        assert!(!v.transpose && v.flip_x && v.flip_y);
        // A sagittal slice (i along y, j along z): anterior on the left, superior up.
        let v = view_of(&affine([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]));
        assert_eq!(v.edges, ['A', 'P', 'S', 'I']);
        assert!(!v.transpose && v.flip_x && v.flip_y);
    }

    /// Rows 1 mm apart, columns 2 mm: a 20 x 20 mm square stays square on screen.
    #[test]
    fn square_pixels() {
        let img = Array2::<f32>::zeros((40, 20));
        let mut p = Array2::<u8>::zeros((40, 20));
        p.slice_mut(s![10..30, 5..15]).fill(1);
        let view = PLAIN;
        let sp = OverlaySpec { size: 80, ..spec() };
        let out = paint(&img, &p, Some(&p), [1.0, 2.0], &view, &sp);
        assert_eq!((out.width, out.height), (80, 80));
        let green: Vec<(usize, usize)> = (0..80)
            .flat_map(|y| (0..80).map(move |x| (x, y)))
            .filter(|&(x, y)| out.pixel(x, y) == GREEN)
            .collect();
        let w =
            green.iter().map(|p| p.0).max().unwrap() - green.iter().map(|p| p.0).min().unwrap() + 1;
        let h =
            green.iter().map(|p| p.1).max().unwrap() - green.iter().map(|p| p.1).min().unwrap() + 1;
        assert_eq!((w, h), (40, 40));
    }

    #[test]
    fn slice_choice() {
        let mut l = Array3::<u8>::zeros((30, 10, 10));
        for k in 5..=25 {
            l.slice_mut(s![k, 0..(1 + k % 7), ..]).fill(1);
        }
        l.slice_mut(s![12, 0..2, 0..2]).fill(2);
        let sp = OverlaySpec {
            every: 10,
            ..spec()
        };
        let ks: Vec<(usize, Vec<String>)> = pick_slices(&l, None, &sp)
            .into_iter()
            .map(|p| (p.k, p.reasons))
            .collect();
        // Largest liver area: k % 7 == 6 first at k = 6; lesion at 12; every 10th from 5.
        assert_eq!(
            ks.iter().map(|p| p.0).collect::<Vec<_>>(),
            vec![5, 6, 12, 15, 25]
        );
        assert_eq!(ks[1].1, vec!["largest liver area".to_string()]);
        assert_eq!(ks[2].1, vec!["largest lesion area".to_string()]);
        // Missed liver in the truth counts too.
        let mut t = l.clone();
        t.slice_mut(s![28, .., ..]).fill(1);
        let k: Vec<usize> = pick_slices(&l, Some(&t), &OverlaySpec { every: 0, ..spec() })
            .iter()
            .map(|p| p.k)
            .collect();
        assert_eq!(k, vec![12, 28]);
        let empty = Array3::<u8>::zeros((30, 10, 10));
        assert_eq!(pick_slices(&empty, None, &sp)[0].k, 15);
    }

    #[test]
    fn png_round_trip() {
        let img = Array3::<f32>::from_shape_fn((3, 20, 30), |(_, j, _)| j as f32 * 5.0);
        let mut h = Header::new(StreamType::Image, [3, 20, 30], [2.0, 1.0, 1.0]);
        h.value_range = Some((0.0, 100.0));
        let image = Volume::new(h.clone(), VolumeData::Image(img));
        let mut l = Array3::<u8>::zeros((3, 20, 30));
        l.slice_mut(s![1, 5..15, 5..25]).fill(1);
        let label = Volume::new(h.with_type(StreamType::Label, 1), VolumeData::Label(l));
        let sp = OverlaySpec { size: 64, ..spec() };
        let drawn = draw(&image, &label, None, &sp).unwrap();
        assert_eq!(drawn.len(), 1);
        assert_eq!(drawn[0].picked.k, 1);
        let dec = png::Decoder::new(std::io::Cursor::new(drawn[0].png.clone()));
        let mut r = dec.read_info().unwrap();
        let info = r.info();
        assert_eq!((info.width, info.height), (64, 43));
        let comment = &info.uncompressed_latin1_text[0];
        assert_eq!(comment.text, "slice 1: largest liver area");
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        r.next_frame(&mut buf).unwrap();
        assert!(buf.iter().any(|&b| b != 0));
        // Mismatched grids are refused, naming both.
        let other = Volume::new(
            Header::new(StreamType::Label, [3, 20, 31], [2.0, 1.0, 1.0]),
            VolumeData::Label(Array3::zeros((3, 20, 31))),
        );
        let e = check_inputs(&image, &other, None).unwrap_err();
        assert!(e.contains("image") && e.contains("label"), "{e}");
    }
}
