//! The rows `survival_features` and `risk` compute: per region (all lesions, each lesion, the
//! liver), its extent and PyRadiomics features, and their CSV and JSON forms.

use ndarray::{s, Array3, ArrayView3, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use voxflow_radiomics::{feature_names, features, RadiomicsError, Settings};
use voxflow_runtime::params::variant_name;
use voxflow_runtime::stream::StreamType;
use voxflow_runtime::{Header, NodeError, ParamEnum, Volume};
use voxflow_volume::{label_components, Connectivity};

/// Row columns before the features.
pub const LEAD_COLUMNS: [&str; 8] = [
    "region",
    "id",
    "status",
    "voxels",
    "volume_ml",
    "centroid_mm_x",
    "centroid_mm_y",
    "centroid_mm_z",
];

/// Features of one region.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionRow {
    /// `lesions`, `lesion_N`, `liver`, `liver_parenchyma` (or `each_lesion` when there is none).
    pub region: String,
    /// Component number for `lesion_N`.
    pub id: Option<usize>,
    /// `ok`, `partial`, `undefined` or `no region`.
    pub status: &'static str,
    pub voxels: usize,
    pub volume_ml: f64,
    /// World coordinates (mm) of the centroid; `None` for an empty region.
    pub centroid_mm: Option<[f64; 3]>,
    /// PyRadiomics names and values (`None` = undefined); empty without features.
    pub features: Vec<(String, Option<f64>)>,
    pub note: String,
}

impl RegionRow {
    /// A value by column name: a feature, `voxels` or `volume_ml`.
    pub fn value(&self, name: &str) -> Option<Option<f64>> {
        match name {
            "voxels" => Some(Some(self.voxels as f64)),
            "volume_ml" => Some(Some(self.volume_ml)),
            _ => self
                .features
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| *v),
        }
    }
}

/// The names of `regions`, checked: not empty, no repeats.
pub fn region_names(list: &[Region]) -> Result<Vec<String>, String> {
    if list.is_empty() {
        return Err("no region given".into());
    }
    for (n, r) in list.iter().enumerate() {
        if list[..n].contains(r) {
            return Err(format!("`{}` is listed twice", r.name()));
        }
    }
    Ok(list.iter().map(|r| r.name()).collect())
}

/// Image and label must be an image and a label stream on the same grid.
pub fn check_geometry(image: &Header, label: &Header) -> Result<(), String> {
    if image.stream_type != StreamType::Image {
        return Err(format!(
            "`image` is a {} stream; survival features need an image",
            image.stream_type
        ));
    }
    if label.stream_type != StreamType::Label {
        return Err(format!(
            "`label` is a {} stream; survival features need a label volume",
            label.stream_type
        ));
    }
    image.check_same_geometry("image", label, "label")
}

/// Voxel count, bounding box (inclusive) and index sums of one region.
#[derive(Clone, Debug)]
pub(crate) struct Extent {
    pub(crate) n: usize,
    lo: [usize; 3],
    hi: [usize; 3],
    sum: [f64; 3],
}

impl Extent {
    fn new() -> Self {
        Extent {
            n: 0,
            lo: [usize::MAX; 3],
            hi: [0; 3],
            sum: [0.0; 3],
        }
    }
    fn add(&mut self, k: usize, j: usize, i: usize) {
        self.n += 1;
        for (a, x) in [k, j, i].into_iter().enumerate() {
            self.lo[a] = self.lo[a].min(x);
            self.hi[a] = self.hi[a].max(x);
            self.sum[a] += x as f64;
        }
    }
    fn merge(mut self, o: &Extent) -> Self {
        self.n += o.n;
        for a in 0..3 {
            self.lo[a] = self.lo[a].min(o.lo[a]);
            self.hi[a] = self.hi[a].max(o.hi[a]);
            self.sum[a] += o.sum[a];
        }
        self
    }
    pub(crate) fn bbox(&self) -> BoxSlice {
        s![
            self.lo[0]..=self.hi[0],
            self.lo[1]..=self.hi[1],
            self.lo[2]..=self.hi[2]
        ]
    }
    /// Mean voxel index `(i, j, k)` through the affine.
    fn centroid_mm(&self, h: &Header) -> [f64; 3] {
        let n = self.n as f64;
        let (k, j, i) = (self.sum[0] / n, self.sum[1] / n, self.sum[2] / n);
        let a = &h.affine;
        [0, 1, 2].map(|r| a[r][0] * i + a[r][1] * j + a[r][2] * k + a[r][3])
    }
}

/// A 3D box as `ndarray` slices it (`Extent::bbox`).
pub(crate) type BoxSlice =
    ndarray::SliceInfo<[ndarray::SliceInfoElem; 3], ndarray::Ix3, ndarray::Ix3>;

/// Extent of the voxels where `pred(label)` holds (planes in parallel).
pub(crate) fn extent(label: &Array3<u8>, pred: impl Fn(u8) -> bool + Sync) -> Extent {
    (0..label.dim().0)
        .into_par_iter()
        .map(|k| {
            let mut e = Extent::new();
            for ((j, i), &v) in label.index_axis(Axis(0), k).indexed_iter() {
                if pred(v) {
                    e.add(k, j, i);
                }
            }
            e
        })
        .reduce(Extent::new, |a, b| a.merge(&b))
}

/// Extents of components `1..=n` of a component volume.
pub(crate) fn component_extents(comps: &Array3<u32>, n: usize) -> Vec<Extent> {
    let mut out = vec![Extent::new(); n];
    for ((k, j, i), &c) in comps.indexed_iter() {
        if c > 0 {
            out[c as usize - 1].add(k, j, i);
        }
    }
    out
}

fn voxel_ml(h: &Header) -> f64 {
    h.spacing.iter().product::<f64>() / 1000.0
}

fn empty_row(region: &str, note: String) -> RegionRow {
    RegionRow {
        region: region.into(),
        id: None,
        status: "no region",
        voxels: 0,
        volume_ml: 0.0,
        centroid_mm: None,
        features: vec![],
        note,
    }
}

/// Features of one non-empty region given as a mask over the extent's bounding box.
fn region_row(
    region: String,
    id: Option<usize>,
    ext: &Extent,
    image: ArrayView3<f32>,
    mask: ArrayView3<bool>,
    h: &Header,
    settings: &Settings,
) -> Result<RegionRow, String> {
    let mut row = RegionRow {
        region,
        id,
        status: "ok",
        voxels: ext.n,
        volume_ml: ext.n as f64 * voxel_ml(h),
        centroid_mm: Some(ext.centroid_mm(h)),
        features: vec![],
        note: String::new(),
    };
    match features(image, mask, h.spacing, settings) {
        Ok(f) => {
            row.features = f
                .into_iter()
                .map(|(n, v)| (n, v.is_finite().then_some(v)))
                .collect();
            let undefined: Vec<&str> = row
                .features
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(n, _)| n.as_str())
                .collect();
            if !undefined.is_empty() {
                row.status = "partial";
                row.note = if undefined.len() == 24
                    && undefined.iter().all(|n| n.starts_with("original_glcm_"))
                {
                    "GLCM features undefined: no two voxels of the region are 26-neighbours".into()
                } else {
                    format!("undefined: {}", undefined.join(" "))
                };
            }
        }
        Err(e @ (RadiomicsError::SingleVoxel | RadiomicsError::TooFewDimensions { .. })) => {
            row.status = "undefined";
            row.note = format!("no features: {e}");
        }
        Err(e) => return Err(format!("region {}: {e}", row.region)),
    }
    Ok(row)
}

/// The rows of `regions` (names of [`Region`]s) for an image and a label volume.
pub fn compute(
    image: &Volume,
    label: &Volume,
    regions: &[String],
    settings: &Settings,
) -> Result<Vec<RegionRow>, String> {
    check_geometry(&image.header, &label.header)?;
    let img = image.image().expect("image volume");
    let lab = label.label().expect("label volume");
    let h = &label.header;
    let mut rows = Vec::new();
    for region in regions {
        let pred: fn(u8) -> bool = match region.as_str() {
            "lesions" => |v| v == 2,
            "liver" => |v| v >= 1,
            "liver_parenchyma" => |v| v == 1,
            "each_lesion" => {
                rows.extend(each_lesion(img, lab, h, settings)?);
                continue;
            }
            other => return Err(format!("unknown region `{other}`")),
        };
        let ext = extent(lab, pred);
        if ext.n == 0 {
            let what = match region.as_str() {
                "lesions" => "the label has no lesion voxel (label 2)",
                "liver" => "the label has no liver or lesion voxel (label >= 1)",
                _ => "the label has no liver voxel (label 1)",
            };
            rows.push(empty_row(region, format!("no region: {what}")));
            continue;
        }
        let bb = ext.bbox();
        let mask = lab.slice(bb).mapv(pred);
        rows.push(region_row(
            region.clone(),
            None,
            &ext,
            img.slice(bb),
            mask.view(),
            h,
            settings,
        )?);
    }
    Ok(rows)
}

fn each_lesion(
    img: &Array3<f32>,
    lab: &Array3<u8>,
    h: &Header,
    settings: &Settings,
) -> Result<Vec<RegionRow>, String> {
    let lesion = lab.mapv(|v| v == 2);
    let (comps, n) = label_components(lesion.view(), Connectivity::TwentySix);
    if n == 0 {
        return Ok(vec![empty_row(
            "each_lesion",
            "no region: the label has no lesion voxel (label 2)".into(),
        )]);
    }
    component_extents(&comps, n)
        .par_iter()
        .enumerate()
        .map(|(c, ext)| {
            let id = c + 1;
            let bb = ext.bbox();
            let mask = comps.slice(bb).mapv(|v| v as usize == id);
            region_row(
                format!("lesion_{id}"),
                Some(id),
                ext,
                img.slice(bb),
                mask.view(),
                h,
                settings,
            )
        })
        .collect()
}

/// All column names of the CSV, in order.
pub fn csv_columns() -> Vec<String> {
    let mut c: Vec<String> = LEAD_COLUMNS.iter().map(|s| s.to_string()).collect();
    c.extend(feature_names());
    c.push("note".into());
    c
}

fn num(x: f64) -> String {
    format!("{x}")
}

/// One line per region after a header line; undefined values are empty cells.
pub fn to_csv(rows: &[RegionRow]) -> String {
    let names = feature_names();
    let mut out = csv_columns().join(",") + "\n";
    for r in rows {
        let mut cells = vec![
            r.region.clone(),
            r.id.map(|i| i.to_string()).unwrap_or_default(),
            r.status.to_string(),
            r.voxels.to_string(),
            num(r.volume_ml),
        ];
        for a in 0..3 {
            cells.push(r.centroid_mm.map(|c| num(c[a])).unwrap_or_default());
        }
        for n in &names {
            cells.push(r.value(n).flatten().map(num).unwrap_or_default());
        }
        cells.push(crate::csv::quote(&r.note));
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn opt(x: Option<f64>) -> Value {
    x.map(Value::from).unwrap_or(Value::Null)
}

/// One JSON object per region with the CSV's keys (`centroid_mm` as `[x, y, z]`).
pub fn row_json(r: &RegionRow) -> Value {
    let mut m = Map::new();
    m.insert("region".into(), Value::from(r.region.clone()));
    m.insert("id".into(), r.id.map(Value::from).unwrap_or(Value::Null));
    m.insert("status".into(), Value::from(r.status));
    m.insert("voxels".into(), Value::from(r.voxels));
    m.insert("volume_ml".into(), Value::from(r.volume_ml));
    m.insert(
        "centroid_mm".into(),
        r.centroid_mm
            .map(|c| Value::from(c.to_vec()))
            .unwrap_or(Value::Null),
    );
    for (n, v) in &r.features {
        m.insert(n.clone(), opt(*v));
    }
    m.insert("note".into(), Value::from(r.note.clone()));
    Value::Object(m)
}

/// `{"settings": {...}, "regions": [...]}`.
pub fn to_json(rows: &[RegionRow], settings: &Settings) -> Value {
    serde_json::json!({
        "settings": { "pyradiomics": "3.0.1 defaults", "binWidth": settings.bin_width },
        // JSON objects may come out key-sorted; this keeps PyRadiomics' order.
        "feature_names": feature_names(),
        "regions": rows.iter().map(row_json).collect::<Vec<_>>(),
    })
}

/// Writes `text` to a node output file.
pub fn write(path: &std::path::Path, text: &str) -> Result<(), NodeError> {
    std::fs::write(path, text)
        .map_err(|e| NodeError::msg(format!("cannot write {}: {e}", path.display())))
}

/// A region the features are computed over; its serde name names its rows.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, ParamEnum)]
#[serde(rename_all = "snake_case")]
pub enum Region {
    Lesions,
    EachLesion,
    Liver,
    LiverParenchyma,
}

impl Region {
    /// The name used in rows and outputs.
    pub fn name(self) -> String {
        variant_name(&self)
    }
}

/// Kernel settings with a fixed bin width (`bin_width` of `survival_features` and `risk`).
pub fn settings(bin_width: f64) -> Settings {
    Settings {
        bin_width,
        ..Settings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extent_holds_every_voxel_of_the_class() {
        let mut l = Array3::<u8>::zeros((5, 6, 7));
        assert_eq!(extent(&l, |v| v == 2).n, 0);
        l[[1, 4, 2]] = 2;
        l[[3, 1, 5]] = 2;
        l[[4, 5, 6]] = 1;
        let e = extent(&l, |v| v == 2);
        assert_eq!((e.n, e.lo, e.hi), (2, [1, 1, 2], [3, 4, 5]));
        let e = extent(&l, |v| v == 1);
        assert_eq!((e.n, e.lo, e.hi), (1, [4, 5, 6], [4, 5, 6]));
    }
}
