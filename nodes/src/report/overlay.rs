//! `overlay`: PNG images of chosen slices with the segmentation drawn on the image (Figure 7
//! colours of Christ et al. 2017 against a ground truth, outlines without one), in
//! radiological orientation with square pixels. The `report` node embeds the same images.

use super::annotate::annotate;
use super::draw::{render, view_of};
use ndarray::{Array3, Axis};
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
pub(crate) mod tests {
    use super::*;
    use ndarray::s;
    use voxflow_runtime::stream::VolumeData;

    /// The overlay settings the drawing tests start from.
    pub(crate) fn spec() -> OverlaySpec {
        OverlaySpec {
            every: 0,
            largest: true,
            window: Some((0.0, 100.0)),
            size: 256,
            alpha: 1.0,
        }
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
