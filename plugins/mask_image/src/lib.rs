//! Example voxflow plugin that streams: `mask_image` keeps an image inside a label mask and sets
//! every other voxel to `outside`, one slice at a time (slice k of both inputs in, slice k out).
//! Written only against `voxflow-plugin-abi`; built as `libmask_image.so`.

use voxflow_plugin_abi::{export_plugin, Emit, Slices, Start, StreamKind};

const DECL: &str = r#"{
  "kind": "mask_image",
  "about": "Image inside a label mask, `outside` elsewhere (streams slices)",
  "docs": "Voxels where the mask is non-zero (or equals `label` when it is set) keep the image value; every other voxel becomes `outside`. Both inputs must lie on the same grid. Works slice by slice: each output slice goes on as soon as slice k of both inputs has arrived; a slice missing from a sparse input counts as zeros. Plugin `mask_image` (voxflow plugin ABI 2).",
  "inputs": [
    { "name": "image", "type": "image", "about": "image to mask" },
    { "name": "mask", "type": "label", "about": "label mask on the image's grid" }
  ],
  "outputs": [{ "name": "out", "type": "image", "about": "the masked image" }],
  "params": [
    { "name": "outside", "type": "float", "default": 0.0, "about": "value outside the mask" },
    { "name": "label", "type": "int", "min": 1, "max": 255, "about": "only this mask value keeps the image (default: every non-zero value)" }
  ]
}"#;

export_plugin!("mask_image", [stream(DECL, MaskImage)]);

struct MaskImage {
    outside: f32,
    label: Option<u8>,
    /// One output slice, reused.
    out: Vec<f32>,
}

impl StreamKind for MaskImage {
    fn start(start: &mut Start) -> Result<Self, String> {
        let image = start.input(0).ok_or("input `image` is not connected")?;
        let mask = start.input(1).ok_or("input `mask` is not connected")?;
        if !image.same_grid(&mask) {
            let [ik, _, ij, ii] = image.shape;
            let [mk, _, mj, mi] = mask.shape;
            return Err(format!(
                "`image` ({ii}x{ij}x{ik}) and `mask` ({mi}x{mj}x{mk}) are not on the same grid"
            ));
        }
        start.open_output(0, &image)?;
        Ok(MaskImage {
            outside: start.params.float("outside").unwrap_or(0.0) as f32,
            label: start.params.int("label").map(|v| v as u8),
            out: vec![0.0; image.slice_len()],
        })
    }

    fn slice(&mut self, slices: &Slices, emit: &mut Emit) -> Result<(), String> {
        let n = self.out.len();
        let image = slices.floats(0);
        let mask = slices.labels(1);
        for v in 0..n {
            let m = mask.map_or(0, |m| m[v]);
            let inside = match self.label {
                Some(l) => m == l,
                None => m != 0,
            };
            self.out[v] = if inside {
                image.map_or(0.0, |i| i[v])
            } else {
                self.outside
            };
        }
        emit.floats(0, slices.index(), &self.out)
    }
}
