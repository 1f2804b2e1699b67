//! `survival_features`: PyRadiomics 3.0.1 default features of the lesions, of each lesion and
//! of the liver (kernel: `voxflow_radiomics`).

use serde::Deserialize;
use std::path::PathBuf;
use voxflow_radiomics::Settings;
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::StreamType;
use voxflow_runtime::{BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeParams, TypedKind};

pub use super::regions::*;

pub struct SurvivalFeatures;

const DOCS: &str = r#"
Gathers `image` (original intensities: HU for CT, the N4-corrected image for MRI) and `label`
(0 background, 1 liver, 2 lesion) on the same grid (same shape and affine, else an error) and
computes the 107 PyRadiomics 3.0.1 default features (shape, firstorder, glcm, gldm, glrlm,
glszm, ngtdm; fixed bin width 25, 3D, distance 1, 13 directions) of each region, named exactly
as PyRadiomics (`original_firstorder_Mean`, ...).

Regions (`regions`, in the order given):
- `lesions`: all voxels with label 2 as one region (what PyRadiomics computes with `label: 2`).
- `each_lesion`: one region per 26-connected component of label 2, rows `lesion_1`,
  `lesion_2`, ... (`id` = component number, raster order of the first voxel as
  `scipy.ndimage.label`).
- `liver`: label >= 1, i.e. the liver **including** its lesions (as the `metrics` node).
- `liver_parenchyma`: label == 1 only (what PyRadiomics computes with `label: 1`).

Every row also has `id`, `status`, `voxels`, `volume_ml` (voxels x voxel volume),
`centroid_mm_x/y/z` (mean voxel index mapped through the header affine: world mm, NIfTI RAS)
and `note`. `status` is `ok`; `no region` (the region is empty: no features, e.g. a label
without lesions, or `each_lesion` without any lesion gives one `each_lesion` row);
`undefined` (one voxel or a region one voxel thick in two axes: PyRadiomics refuses these
too, so there are no features); or `partial` (no two voxels are 26-neighbours, so the 24
GLCM features are undefined). Undefined values are empty CSV cells / JSON `null`, never NaN;
the reason is in `note`.

`csv` gets one row per region; `json` gets `{"settings": ..., "feature_names": [...],
"regions": [{...}, ...]}` with the same keys per region (`feature_names` gives PyRadiomics'
order, which JSON readers may not keep).
"#;

/// Params of `survival_features`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct SurvivalParams {
    /// regions, in output order
    #[param(default = vec![Region::Lesions, Region::EachLesion, Region::Liver])]
    pub regions: Vec<Region>,
    /// fixed bin width (PyRadiomics binWidth)
    #[param(default = 25.0, min = 1e-9)]
    pub bin_width: f64,
    /// JSON output file
    #[param(writes)]
    pub json: Option<PathBuf>,
    /// CSV output file, one row per region
    #[param(writes)]
    pub csv: Option<PathBuf>,
}

impl TypedKind for SurvivalFeatures {
    type Params = SurvivalParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            "survival_features",
            "PyRadiomics features of the lesions, each lesion and the liver",
        )
        .docs(DOCS)
        .input(
            "image",
            PortType::Fixed(StreamType::Image),
            "original intensities (HU for CT)",
        )
        .input(
            "label",
            PortType::Fixed(StreamType::Label),
            "labels: 1 liver, 2 lesion; same grid",
        )
    }

    fn check_params(&self, p: &SurvivalParams) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        if let Err(e) = region_names(&p.regions) {
            errs.push(("regions".into(), e));
        }
        if p.json.is_none() && p.csv.is_none() {
            errs.push((
                "json".into(),
                "set `json` and/or `csv`, else the features go nowhere".into(),
            ));
        }
        errs
    }

    fn create(&self, p: SurvivalParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(SurvivalFeaturesNode {
            regions: region_names(&p.regions)?,
            settings: settings(p.bin_width),
            json: p.json,
            csv: p.csv,
        }))
    }
}

struct SurvivalFeaturesNode {
    regions: Vec<String>,
    settings: Settings,
    json: Option<PathBuf>,
    csv: Option<PathBuf>,
}

impl Node for SurvivalFeaturesNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let mut v = ctx.gather_many(&["image", "label"])?;
        let label = v.pop().expect("two volumes");
        let image = v.pop().expect("two volumes");
        let rows = compute(&image, &label, &self.regions, &self.settings)?;
        for r in &rows {
            tracing::info!(region = %r.region, status = r.status, voxels = r.voxels, "survival features");
        }
        if let Some(path) = &self.json {
            let text =
                serde_json::to_string_pretty(&to_json(&rows, &self.settings)).expect("json") + "\n";
            write(&ctx.output_file(path)?, &text)?;
        }
        if let Some(path) = &self.csv {
            write(&ctx.output_file(path)?, &to_csv(&rows))?;
        }
        Ok(())
    }
}
