//! `stats`: liver volume, lesion count and each lesion's volume and largest diameter of a label
//! volume, as JSON and/or CSV. The `report` node shows the same numbers ([`case_stats`]).

use ndarray::Array3;
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use voxflow_runtime::decl::PortType;
use voxflow_runtime::stream::StreamType;
use voxflow_runtime::validate::strip_extension;
use voxflow_runtime::{
    BuildEnv, Header, Node, NodeCtx, NodeDecl, NodeError, NodeParams, TypedKind,
};
use voxflow_volume::{label_components, Connectivity};

pub struct Stats;

const DOCS: &str = r#"
Gathers a label volume (0 background, 1 liver, 2 lesion) and measures:

- liver volume: voxels with label >= 1 (the liver including its lesions), in mL;
- lesions: 26-connected components of label 2, largest first; each one's volume (mL) and
  largest diameter: the longest distance in mm between the centres of two of its voxels
  (so a one-voxel lesion measures 0 mm);
- total and largest lesion volume and the largest diameter over all lesions (0 without lesions).

Volumes use the voxel volume and distances the voxel positions given by the stream's affine.
`json` gets `{"case", "liver_volume_ml", "lesion_count", "lesion_total_ml",
"lesion_largest_ml", "lesion_largest_diameter_mm", "lesions": [{"id", "voxels", "volume_ml",
"diameter_mm", "slices": [first, last]}]}`; `csv` gets a header line and one row with the
case-level numbers (same column names), so files of several cases concatenate into a table.
`case` defaults to the input's file name without extension.
"#;

/// One lesion (26-connected component of label 2).
#[derive(Clone, Debug, PartialEq)]
pub struct LesionStats {
    /// 1 = largest.
    pub id: usize,
    pub voxels: u64,
    pub volume_ml: f64,
    pub diameter_mm: f64,
    /// First and last slice index `k` it touches.
    pub slices: (usize, usize),
}

/// What `stats` writes and `report` shows for one case.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseStats {
    pub case: String,
    pub liver_voxels: u64,
    pub liver_volume_ml: f64,
    /// Largest first.
    pub lesions: Vec<LesionStats>,
}

impl CaseStats {
    pub fn lesion_total_ml(&self) -> f64 {
        // fold from +0.0: an empty f64 `sum` is -0.0, which JSON would show as "-0.0".
        self.lesions.iter().fold(0.0, |a, l| a + l.volume_ml)
    }
    pub fn lesion_largest_ml(&self) -> f64 {
        self.lesions.first().map_or(0.0, |l| l.volume_ml)
    }
    pub fn lesion_largest_diameter_mm(&self) -> f64 {
        self.lesions
            .iter()
            .map(|l| l.diameter_mm)
            .fold(0.0, f64::max)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "case": self.case,
            "liver_volume_ml": self.liver_volume_ml,
            "lesion_count": self.lesions.len(),
            "lesion_total_ml": self.lesion_total_ml(),
            "lesion_largest_ml": self.lesion_largest_ml(),
            "lesion_largest_diameter_mm": self.lesion_largest_diameter_mm(),
            "lesions": self.lesions.iter().map(|l| json!({
                "id": l.id,
                "voxels": l.voxels,
                "volume_ml": l.volume_ml,
                "diameter_mm": l.diameter_mm,
                "slices": [l.slices.0, l.slices.1],
            })).collect::<Vec<_>>(),
        })
    }

    pub fn to_csv(&self) -> String {
        format!(
            "case,liver_volume_ml,lesion_count,lesion_total_ml,lesion_largest_ml,lesion_largest_diameter_mm\n{},{},{},{},{},{}\n",
            crate::csv::quote(&self.case),
            self.liver_volume_ml,
            self.lesions.len(),
            self.lesion_total_ml(),
            self.lesion_largest_ml(),
            self.lesion_largest_diameter_mm()
        )
    }
}

/// The case name: `case` if given, else the `source` file (or folder) name without extension.
pub fn case_name(header: &Header, case: Option<&str>) -> String {
    if let Some(c) = case {
        return c.to_string();
    }
    let src = crate::meta::source(header).unwrap_or("case");
    let name = Path::new(src)
        .file_name()
        .map_or(src.into(), |n| n.to_string_lossy());
    strip_extension(&name).to_string()
}

/// The 3x3 part of the affine (voxel axes `i, j, k` to world mm).
fn linear(h: &Header) -> [[f64; 3]; 3] {
    let a = h.affine;
    [
        [a[0][0], a[0][1], a[0][2]],
        [a[1][0], a[1][1], a[1][2]],
        [a[2][0], a[2][1], a[2][2]],
    ]
}

/// Volume of one voxel in mL.
pub fn voxel_ml(h: &Header) -> f64 {
    let m = linear(h);
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    det.abs() / 1000.0
}

/// Measures a label volume (see the node docs).
pub fn case_stats(label: &Array3<u8>, header: &Header, case: &str) -> CaseStats {
    let ml = voxel_ml(header);
    let liver_voxels = label.iter().filter(|&&v| v >= 1).count() as u64;
    let lesion = label.mapv(|v| v == 2);
    let (comp, n) = label_components(lesion.view(), Connectivity::TwentySix);
    let m = linear(header);
    let world = |k: usize, j: usize, i: usize| {
        let (i, j, k) = (i as f64, j as f64, k as f64);
        [0, 1, 2].map(|r| m[r][0] * i + m[r][1] * j + m[r][2] * k)
    };
    let mut voxels = vec![0u64; n];
    let mut slices = vec![(usize::MAX, 0); n];
    // Diameter candidates: voxels with an outside neighbour along each axis (only those can
    // be corners of the convex hull, where the longest distance ends).
    let mut points: Vec<Vec<[f64; 3]>> = vec![Vec::new(); n];
    let (nk, nj, ni) = comp.dim();
    for ((k, j, i), &c) in comp.indexed_iter() {
        if c == 0 {
            continue;
        }
        let c_idx = c as usize - 1;
        voxels[c_idx] += 1;
        let s = &mut slices[c_idx];
        *s = (s.0.min(k), s.1.max(k));
        let edge = |pos: usize, len: usize, at: &dyn Fn(usize) -> u32| {
            pos == 0 || pos + 1 == len || at(pos - 1) != c || at(pos + 1) != c
        };
        if edge(k, nk, &|x| comp[[x, j, i]])
            && edge(j, nj, &|x| comp[[k, x, i]])
            && edge(i, ni, &|x| comp[[k, j, x]])
        {
            points[c_idx].push(world(k, j, i));
        }
    }
    let mut lesions: Vec<LesionStats> = (0..n)
        .map(|c| LesionStats {
            id: 0,
            voxels: voxels[c],
            volume_ml: voxels[c] as f64 * ml,
            diameter_mm: max_distance(&points[c]),
            slices: slices[c],
        })
        .collect();
    // Largest first; equal volumes keep raster order.
    lesions.sort_by_key(|l| std::cmp::Reverse(l.voxels));
    for (n, l) in lesions.iter_mut().enumerate() {
        l.id = n + 1;
    }
    CaseStats {
        case: case.to_string(),
        liver_voxels,
        liver_volume_ml: liver_voxels as f64 * ml,
        lesions,
    }
}

/// Longest distance between two points (0 for fewer than two).
fn max_distance(p: &[[f64; 3]]) -> f64 {
    let d2 = |a: &[f64; 3], b: &[f64; 3]| (0..3).map(|r| (a[r] - b[r]).powi(2)).sum::<f64>();
    (0..p.len())
        .into_par_iter()
        .map(|a| p[a + 1..].iter().map(|b| d2(&p[a], b)).fold(0.0, f64::max))
        .reduce(|| 0.0, f64::max)
        .sqrt()
}

fn write(path: &Path, text: &str) -> Result<(), NodeError> {
    std::fs::write(path, text)
        .map_err(|e| NodeError::msg(format!("cannot write {}: {e}", path.display())))
}

/// Params of `stats`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct StatsParams {
    /// JSON output file
    #[param(writes)]
    pub json: Option<PathBuf>,
    /// CSV output file (one row)
    #[param(writes)]
    pub csv: Option<PathBuf>,
    /// case name (default: the input file name without extension)
    pub case: Option<String>,
}

impl TypedKind for Stats {
    type Params = StatsParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            "stats",
            "Liver volume, lesion count, lesion volumes and diameters of a label volume (JSON, CSV)",
        )
        .docs(DOCS)
        .input(
            "label",
            PortType::Fixed(StreamType::Label),
            "labels: 0 background, 1 liver, 2 lesion",
        )
    }

    fn check_params(&self, p: &StatsParams) -> Vec<(String, String)> {
        if p.json.is_none() && p.csv.is_none() {
            return vec![(
                "json".into(),
                "set `json` and/or `csv`, else the numbers go nowhere".into(),
            )];
        }
        vec![]
    }

    fn create(&self, p: StatsParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(StatsNode {
            json: p.json,
            csv: p.csv,
            case: p.case,
        }))
    }
}

struct StatsNode {
    json: Option<PathBuf>,
    csv: Option<PathBuf>,
    case: Option<String>,
}

impl Node for StatsNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let v = ctx.gather("label")?;
        let label = v.label().ok_or_else(|| {
            NodeError::msg(format!(
                "input `label` carries a {} stream, this node needs label",
                v.header.stream_type
            ))
        })?;
        let s = case_stats(
            label,
            &v.header,
            &case_name(&v.header, self.case.as_deref()),
        );
        if let Some(path) = &self.json {
            let text = serde_json::to_string_pretty(&s.to_json()).expect("json") + "\n";
            write(&ctx.output_file(path)?, &text)?;
        }
        if let Some(path) = &self.csv {
            write(&ctx.output_file(path)?, &s.to_csv())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::s;

    fn header(shape: [usize; 3], spacing: [f64; 3]) -> Header {
        Header::new(StreamType::Label, shape, spacing)
    }

    #[test]
    fn no_lesions_total_is_positive_zero() {
        let st = case_stats(&Array3::zeros((2, 3, 3)), &header([2, 3, 3], [1.0; 3]), "c");
        assert!(st.lesion_total_ml().is_sign_positive());
        assert_eq!(st.to_json()["lesion_total_ml"].to_string(), "0.0");
    }

    #[test]
    fn volumes_and_diameters_on_boxes() {
        // Spacing (dk, dj, di) = (2, 1, 0.5) mm: a voxel is 1 mm^3 = 0.001 mL.
        let h = header([20, 30, 40], [2.0, 1.0, 0.5]);
        let mut l = Array3::<u8>::zeros((20, 30, 40));
        l.slice_mut(s![1..19, 1..29, 1..39]).fill(1);
        // Lesion A: 3 x 4 x 5 voxels -> 60 mm^3; corners 2*2, 3*1, 4*0.5 mm apart.
        l.slice_mut(s![2..5, 2..6, 2..7]).fill(2);
        // Lesion B: one voxel, far from the others.
        l[[15, 20, 30]] = 2;
        // Lesion C: two voxels joined through a corner (26-connected, not 6-connected).
        l[[10, 10, 10]] = 2;
        l[[11, 11, 11]] = 2;
        let st = case_stats(&l, &h, "t");
        assert_eq!(st.liver_voxels, 18 * 28 * 38);
        assert!((st.liver_volume_ml - 18.0 * 28.0 * 38.0 / 1000.0).abs() < 1e-9);
        assert_eq!(st.lesions.len(), 3);
        let a = &st.lesions[0];
        assert_eq!((a.id, a.voxels, a.slices), (1, 60, (2, 4)));
        assert!((a.volume_ml - 0.06).abs() < 1e-12);
        let want = (4.0f64.powi(2) + 3.0f64.powi(2) + 2.0f64.powi(2)).sqrt();
        assert!((a.diameter_mm - want).abs() < 1e-12, "{}", a.diameter_mm);
        let c = &st.lesions[1];
        assert_eq!((c.voxels, c.slices), (2, (10, 11)));
        assert!((c.diameter_mm - (4.0f64 + 1.0 + 0.25).sqrt()).abs() < 1e-12);
        assert_eq!(st.lesions[2].diameter_mm, 0.0);
        assert!((st.lesion_total_ml() - 0.063).abs() < 1e-12);
        assert_eq!(st.lesion_largest_ml(), a.volume_ml);
        assert_eq!(st.lesion_largest_diameter_mm(), a.diameter_mm);
        let j = st.to_json();
        assert_eq!(j["lesion_count"], 3);
        assert_eq!(j["lesions"][0]["slices"], json!([2, 4]));
        let csv = st.to_csv();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows.len(), 2);
        assert!(rows[1].starts_with("t,19.152,3,0.063,0.06,"), "{}", rows[1]);
    }

    #[test]
    fn diameter_of_a_ball_and_affine_volume() {
        // A ball of radius 6 mm on a 1 x 0.5 x 0.5 mm grid, with an affine that permutes
        // and flips the axes: the diameter is 12 mm and the volume 4/3 pi r^3, within the
        // voxel discretisation.
        let (nk, nj, ni) = (20, 32, 32);
        let mut h = header([nk, nj, ni], [1.0, 0.5, 0.5]);
        h.affine = [
            [0.0, -0.5, 0.0, 3.0],
            [0.5, 0.0, 0.0, -7.0],
            [0.0, 0.0, 1.0, 100.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let mut l = Array3::<u8>::zeros((nk, nj, ni));
        for ((k, j, i), v) in l.indexed_iter_mut() {
            let d = (k as f64 - 10.0).powi(2)
                + ((j as f64 - 16.0) * 0.5).powi(2)
                + ((i as f64 - 16.0) * 0.5).powi(2);
            if d <= 36.0 {
                *v = 2;
            }
        }
        let st = case_stats(&l, &h, "ball");
        assert_eq!(st.lesions.len(), 1);
        assert!((st.lesions[0].diameter_mm - 12.0).abs() < 1e-9);
        let v = 4.0 / 3.0 * std::f64::consts::PI * 216.0 / 1000.0;
        assert!((st.lesions[0].volume_ml - v).abs() / v < 0.03);
        // Brute force over all voxels agrees with the candidate reduction.
        let all: Vec<[f64; 3]> = l
            .indexed_iter()
            .filter(|(_, &v)| v == 2)
            .map(|((k, j, i), _)| [k as f64, j as f64 * 0.5, i as f64 * 0.5])
            .collect();
        assert!((max_distance(&all) - st.lesions[0].diameter_mm).abs() < 1e-9);
    }

    #[test]
    fn case_names() {
        let mut h = header([1, 1, 1], [1.0; 3]);
        assert_eq!(case_name(&h, Some("x")), "x");
        crate::meta::set_source(&mut h, Path::new("/data/ircadb01_ct.nii.gz"));
        assert_eq!(case_name(&h, None), "ircadb01_ct");
    }
}
