//! `n4`: N4 bias field correction (the `voxflow_n4` kernel as a node).

use ndarray::{Array3, Axis};
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::{SliceData, StreamType, Volume};
use voxflow_runtime::{
    BuildEnv, Header, Node, NodeCtx, NodeDecl, NodeError, NodeParams, ParamEnum, Slice, TypedKind,
};

use serde::{Deserialize, Serialize};
pub use voxflow_n4::{
    itk_shrink_offsets, n4 as n4_kernel, n4_with_offsets, otsu_mask, ItkGeometry, N4Output,
    N4Params, NiftiXform,
};

pub struct N4;

const DOCS: &str = r#"
N4 bias field correction (Tustison et al. 2010) as ITK's `N4BiasFieldCorrectionImageFilter`
runs it from SimpleITK: in the log domain over a mask, each iteration sharpens the intensity
histogram (Wiener deconvolution of a Gaussian of `fwhm`, `bins` bins, `wiener_noise`), fits the
residual with a B-spline of `spline_order` on the current control lattice and adds it to the
bias; a level stops after its `iterations` entry or when the coefficient of variation of the
bias change is <= `convergence`. Each further level doubles the lattice (`2n - order` control
points per axis, starting from `control_points`). The fit runs on the image subsampled by
`shrink`; the bias is evaluated at full resolution.

Mask: `otsu` = voxels above SimpleITK's `OtsuThreshold(image, 0, 1, 200)` on the full-resolution
input; `nonzero` = voxels != 0; `none` = every voxel. A connected `mask_label` stream (same
shape) overrides `mask`: its non-zero voxels are the mask.

Outputs: `out` = input / bias inside the mask, the input value outside it (no declared value
range); `bias` = the multiplicative field on the whole grid. The node gathers the whole volume
and uses the node's thread budget. Errors: a value <= 0 (or not finite) inside the mask, an image
constant inside the mask, an empty mask (also after shrinking).
"#;

/// Where N4 fits when no `mask_label` is connected.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, ParamEnum)]
#[serde(rename_all = "snake_case")]
pub enum N4Mask {
    Otsu,
    Nonzero,
    None,
}

/// Params of `n4`; defaults from the kernel's [`N4Params`].
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct N4NodeParams {
    /// subsampling factor of the fitting grid
    #[param(default = N4Params::default().shrink, min = 1)]
    pub shrink: usize,
    /// maximum iterations per level (one entry per level)
    #[param(default = N4Params::default().iterations.iter().map(|&n| n as i64).collect())]
    pub iterations: Vec<i64>,
    /// stop a level when the CV of the bias change is <= this
    #[param(default = N4Params::default().convergence, min = 0)]
    pub convergence: f64,
    /// control points per axis at the first level
    #[param(default = N4Params::default().control_points, min = 2)]
    pub control_points: usize,
    /// B-spline order
    #[param(default = N4Params::default().spline_order, min = 1, max = 5)]
    pub spline_order: usize,
    /// histogram bins of the sharpening step
    #[param(default = N4Params::default().bins, min = 2)]
    pub bins: usize,
    /// FWHM of the Gaussian bias model (log units)
    #[param(default = N4Params::default().fwhm, gt = 0)]
    pub fwhm: f64,
    /// Wiener filter noise
    #[param(default = N4Params::default().wiener_noise, min = 0)]
    pub wiener_noise: f64,
    /// where to fit: otsu | nonzero | none
    #[param(default = N4Mask::Otsu)]
    pub mask: N4Mask,
}

impl TypedKind for N4 {
    type Params = N4NodeParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            "n4",
            "N4 bias field correction (MR intensity inhomogeneity)",
        )
        .docs(DOCS)
        .input(
            "in",
            PortType::Fixed(StreamType::Image),
            "image (values > 0 inside the mask)",
        )
        .optional_input(
            "mask_label",
            PortType::Fixed(StreamType::Label),
            "label volume whose non-zero voxels are the mask (overrides `mask`)",
        )
        .output("out", PortType::Fixed(StreamType::Image), "corrected image")
        .output(
            "bias",
            PortType::Fixed(StreamType::Image),
            "multiplicative bias field",
        )
    }

    fn check_params(&self, p: &N4NodeParams) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        if p.iterations.is_empty() || p.iterations.iter().any(|&n| n < 1) {
            errs.push((
                "iterations".into(),
                "must be a non-empty list of counts >= 1".into(),
            ));
        }
        if p.control_points < p.spline_order + 1 {
            errs.push((
                "control_points".into(),
                format!("must be >= spline_order + 1 ({})", p.spline_order + 1),
            ));
        }
        errs
    }

    fn create(&self, p: N4NodeParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        let params = N4Params {
            shrink: p.shrink,
            // check_params: every count is >= 1
            iterations: p.iterations.iter().map(|&n| n as usize).collect(),
            convergence: p.convergence,
            control_points: p.control_points,
            spline_order: p.spline_order,
            bins: p.bins,
            fwhm: p.fwhm,
            wiener_noise: p.wiener_noise,
        };
        let mask = match p.mask {
            N4Mask::Otsu => MaskMode::Otsu,
            N4Mask::Nonzero => MaskMode::Nonzero,
            N4Mask::None => MaskMode::All,
        };
        Ok(Box::new(N4Node { params, mask }))
    }
}

/// How the node chooses the voxels N4 fits on when no `mask_label` is connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskMode {
    Otsu,
    Nonzero,
    All,
}

/// The mask of `mode` for `image`.
pub fn make_mask(image: &Array3<f32>, mode: MaskMode) -> Array3<bool> {
    match mode {
        MaskMode::Otsu => otsu_mask(image.view(), 200),
        MaskMode::Nonzero => image.mapv(|v| v != 0.0),
        MaskMode::All => Array3::from_elem(image.dim(), true),
    }
}

struct N4Node {
    params: N4Params,
    mask: MaskMode,
}

impl Node for N4Node {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let (vol, label) = if ctx.has_input("mask_label") {
            let mut v = ctx.gather_many(&["in", "mask_label"])?;
            let l = v.pop().expect("two volumes");
            (v.pop().expect("two volumes"), Some(l))
        } else {
            (ctx.gather("in")?, None)
        };
        let image = vol.image().ok_or_else(|| {
            NodeError::msg(format!(
                "input `in` carries a {} stream, n4 needs image",
                vol.header.stream_type
            ))
        })?;
        let threads = ctx.threads().max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| NodeError::msg(format!("cannot start {threads} threads: {e}")))?;
        let out = pool.install(|| -> Result<N4Output, NodeError> {
            let mask = match &label {
                Some(l) => {
                    let lab = l.label().ok_or_else(|| {
                        NodeError::msg(format!(
                            "input `mask_label` carries a {} stream, it must be label",
                            l.header.stream_type
                        ))
                    })?;
                    if l.header.shape != vol.header.shape {
                        return Err(NodeError::msg(format!(
                            "input `mask_label` has shape {:?} (k, j, i), the image {:?}",
                            l.header.shape, vol.header.shape
                        )));
                    }
                    lab.mapv(|v| v != 0)
                }
                None => make_mask(image, self.mask),
            };
            // Sample the shrunk grid where SimpleITK's Shrink does (it depends on the geometry).
            let g = itk_geometry(&vol.header);
            let offsets = itk_shrink_offsets(
                vol.header.shape,
                self.params.shrink,
                [g.spacing[2], g.spacing[1], g.spacing[0]],
                g.origin,
                g.direction,
            );
            n4_with_offsets(
                image.view(),
                mask.view(),
                vol.header.spacing,
                &self.params,
                offsets,
            )
            .map_err(|e| NodeError::msg(e.to_string()))
        })?;
        emit_pair(ctx, &vol, out.corrected, out.bias)
    }
}

/// The image geometry SimpleITK reads from the file the volume came from: from the NIfTI header
/// fields `read_volume` records (`nifti_xform`, ITK's sform/qform choice), while they still
/// describe the volume's grid (a node that crops or resamples passes the metadata on unchanged),
/// else from the volume's affine.
fn itk_geometry(h: &Header) -> ItkGeometry {
    let flip = [-1.0, -1.0, 1.0];
    let from_file = h
        .meta
        .get("nifti_xform")
        .and_then(|v| NiftiXform::deserialize(v).ok())
        .and_then(|x| x.itk_geometry().ok())
        .filter(|g| {
            (0..3).all(|r| {
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * (1.0 + b.abs());
                close(flip[r] * g.origin[r], h.affine[r][3])
                    && (0..3).all(|c| {
                        close(
                            flip[r] * g.direction[r * 3 + c] * g.spacing[c],
                            h.affine[r][c],
                        )
                    })
            })
        });
    if let Some(g) = from_file {
        return g;
    }
    let a = &h.affine;
    let mut direction = [0.0; 9];
    for c in 0..3 {
        let norm = (0..3)
            .map(|r| a[r][c] * a[r][c])
            .sum::<f64>()
            .sqrt()
            .max(f64::MIN_POSITIVE);
        for r in 0..3 {
            direction[r * 3 + c] = flip[r] * a[r][c] / norm;
        }
    }
    ItkGeometry {
        origin: std::array::from_fn(|r| flip[r] * a[r][3]),
        direction,
        spacing: [h.spacing[2], h.spacing[1], h.spacing[0]],
    }
}

/// Streams the corrected image on `out` and the field on `bias`, slice by slice interleaved, for
/// the slices present in the input.
fn emit_pair(
    ctx: &mut NodeCtx,
    vol: &Volume,
    corrected: Array3<f32>,
    bias: Array3<f32>,
) -> Result<(), NodeError> {
    let mut h: Header = vol.header.clone();
    h.value_range = None;
    // N4 is no step of the preprocessing grammar: what came before is no longer described.
    h.meta.remove(crate::meta::PREPROCESS);
    let want_bias = ctx.output_used("bias");
    ctx.send_header("out", h.clone())?;
    if want_bias {
        ctx.send_header("bias", h)?;
    }
    for (k, meta) in vol.slice_meta.iter().enumerate() {
        let Some(meta) = meta else { continue };
        let mut s = Slice::new(
            k,
            SliceData::Image(corrected.index_axis(Axis(0), k).to_owned()),
        );
        s.meta = meta.clone();
        ctx.send_slice("out", s)?;
        if want_bias {
            let mut b = Slice::new(k, SliceData::Image(bias.index_axis(Axis(0), k).to_owned()));
            b.meta = meta.clone();
            ctx.send_slice("bias", b)?;
        }
    }
    ctx.end("out")?;
    if want_bias {
        ctx.end("bias")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxflow_runtime::StreamType;

    /// A header as `read_volume` leaves it for a NIfTI file with this sform (code 1) and pixdim.
    fn header(srow: [[f32; 4]; 3], pixdim: [f32; 4]) -> Header {
        let mut h = Header::new(StreamType::Image, [4, 6, 8], [1.0; 3]);
        for (a, s) in h.affine.iter_mut().zip(&srow) {
            for (x, &v) in a.iter_mut().zip(s) {
                *x = v as f64;
            }
        }
        h.spacing = [2, 1, 0].map(|c| {
            (0..3)
                .map(|r| h.affine[r][c] * h.affine[r][c])
                .sum::<f64>()
                .sqrt()
        });
        let x = NiftiXform {
            qform_code: 0,
            sform_code: 1,
            quatern: [0.0; 3],
            qoffset: [0.0; 3],
            srow,
            pixdim,
            xyzt_units: 2,
        };
        h.meta
            .insert("nifti_xform".into(), serde_json::to_value(x).unwrap());
        h
    }

    #[test]
    fn geometry_comes_from_the_header_fields_while_they_match_the_grid() {
        // pixdim says 7.7000003 where the sform's column is 7.7: ITK takes pixdim
        let dz = 7.700_000_3f32;
        let srow = [
            [-1.25, 0.0, 0.0, 10.5],
            [0.0, -1.25, 0.0, -20.25],
            [0.0, 0.0, 7.7, 30.0],
        ];
        let h = header(srow, [1.0, 1.25, 1.25, dz]);
        let g = itk_geometry(&h);
        assert_eq!(g.spacing, [1.25, 1.25, dz as f64]);
        assert_eq!(g.origin, [-10.5, 20.25, 30.0]);
        assert_eq!(g.direction, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        // A node moved the grid (e.g. a crop) but passed the metadata on: use the affine.
        let mut moved = h.clone();
        moved.affine[0][3] += 5.0;
        let g = itk_geometry(&moved);
        assert_eq!(g.origin, [-15.5, 20.25, 30.0]);
        assert_eq!(g.spacing, [1.25, 1.25, 7.7f32 as f64]);
    }
}
