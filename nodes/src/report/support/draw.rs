//! Drawing one slice for `overlay` and `report`: Figure 7 classes and colours, the
//! radiological screen orientation from the affine, square-pixel resampling, outlines; PNG
//! encoding (the annotations: `annotate.rs`).

use crate::report::overlay::OverlaySpec;
use ndarray::{Array2, ArrayView2};

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
    pub(super) fn set(&mut self, x: usize, y: usize, c: [u8; 3]) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::s;
    use voxflow_runtime::stream::StreamType;
    use voxflow_runtime::Header;

    use crate::report::overlay::tests::spec;

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
}
