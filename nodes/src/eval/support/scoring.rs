//! What `metrics` computes, also used by `voxflow eval` and the report: class rules, per-class
//! metrics and detection of a prediction against the truth, and their JSON and CSV forms.

use ndarray::Array3;
use rayon::prelude::*;
use serde_json::{Map, Value};
use voxflow_metrics::{binary_metrics, detection};
pub use voxflow_metrics::{
    ClassMetrics, Detection, Metric, SizedDetection, Undefined, SIZED_PRED_MIN_MM3,
    SIZED_TRUTH_MIN_MM3,
};
use voxflow_runtime::stream::StreamType;
use voxflow_runtime::{Header, Volume};

/// Which labels make up a class.
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    Ge(u8),
    Gt(u8),
    Le(u8),
    Lt(u8),
    Eq(u8),
    Ne(u8),
    In(Vec<u8>),
}

impl Rule {
    pub fn matches(&self, v: u8) -> bool {
        match self {
            Rule::Ge(n) => v >= *n,
            Rule::Gt(n) => v > *n,
            Rule::Le(n) => v <= *n,
            Rule::Lt(n) => v < *n,
            Rule::Eq(n) => v == *n,
            Rule::Ne(n) => v != *n,
            Rule::In(s) => s.contains(&v),
        }
    }
}

/// A named class of the evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassSpec {
    pub name: String,
    pub rule: Rule,
}

/// The default classes: liver = label >= 1, lesion = label == 2.
pub const DEFAULT_CLASSES: [&str; 2] = ["liver:>=1", "lesion:==2"];

fn label(s: &str, spec: &str) -> Result<u8, String> {
    s.trim()
        .parse::<u8>()
        .map_err(|_| format!("class `{spec}`: `{}` is not a label value 0..255", s.trim()))
}

/// Parses one `NAME:RULE`.
pub fn parse_class(spec: &str) -> Result<ClassSpec, String> {
    let (name, rule) = spec.split_once(':').ok_or_else(|| {
        format!("class `{spec}`: expected NAME:RULE such as `liver:>=1` or `lesion:==2`")
    })?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "class `{spec}`: the name must be letters, digits, `_` or `-`"
        ));
    }
    let r = rule.trim();
    let rule = if let Some(n) = r.strip_prefix(">=") {
        Rule::Ge(label(n, spec)?)
    } else if let Some(n) = r.strip_prefix("<=") {
        Rule::Le(label(n, spec)?)
    } else if let Some(n) = r.strip_prefix("==") {
        Rule::Eq(label(n, spec)?)
    } else if let Some(n) = r.strip_prefix("!=") {
        Rule::Ne(label(n, spec)?)
    } else if let Some(n) = r.strip_prefix('>') {
        Rule::Gt(label(n, spec)?)
    } else if let Some(n) = r.strip_prefix('<') {
        Rule::Lt(label(n, spec)?)
    } else {
        Rule::In(
            r.split(',')
                .map(|n| label(n, spec))
                .collect::<Result<_, _>>()?,
        )
    };
    Ok(ClassSpec {
        name: name.to_string(),
        rule,
    })
}

/// Parses a class list; names must be distinct.
pub fn parse_classes<S: AsRef<str>>(specs: &[S]) -> Result<Vec<ClassSpec>, String> {
    let mut out: Vec<ClassSpec> = Vec::new();
    for s in specs {
        let c = parse_class(s.as_ref())?;
        if out.iter().any(|o| o.name == c.name) {
            return Err(format!("class `{}` is listed twice", c.name));
        }
        out.push(c);
    }
    if out.is_empty() {
        return Err("no class given".into());
    }
    Ok(out)
}

/// Checks that every detection class is one of `classes`.
pub fn check_detection(classes: &[ClassSpec], detect: &[String]) -> Result<(), String> {
    for d in detect {
        if !classes.iter().any(|c| &c.name == d) {
            let names: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "`{d}` is not one of the classes ({})",
                names.join(", ")
            ));
        }
    }
    Ok(())
}

/// The metrics of one class.
#[derive(Clone, Debug)]
pub struct ClassResult {
    pub name: String,
    pub metrics: ClassMetrics,
    pub detection: Option<Detection>,
}

/// Metric names in output order (JSON keys, CSV columns, summary rows).
pub const METRIC_NAMES: [&str; 6] = ["dice", "voe", "rvd", "asd_mm", "msd_mm", "hd95_mm"];

impl ClassResult {
    /// The metric by name (one of [`METRIC_NAMES`]).
    pub fn metric(&self, name: &str) -> Metric {
        let m = &self.metrics;
        match name {
            "dice" => m.dice,
            "voe" => m.voe,
            "rvd" => m.rvd,
            "asd_mm" => m.asd_mm,
            "msd_mm" => m.msd_mm,
            "hd95_mm" => m.hd95_mm,
            _ => panic!("unknown metric {name}"),
        }
    }
    /// `"asd_mm: pred empty; ..."`, empty when every metric is defined.
    pub fn note(&self) -> String {
        METRIC_NAMES
            .iter()
            .filter_map(|n| self.metric(n).err().map(|u| format!("{n}: {u}")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Geometry check: same shape and affine (within 1e-4 mm), both label volumes.
pub fn check_pair(pred: &Header, truth: &Header) -> Result<(), String> {
    for (h, what) in [(pred, "pred"), (truth, "truth")] {
        if h.stream_type != StreamType::Label {
            return Err(format!(
                "{what} is a {} stream; metrics need label volumes",
                h.stream_type
            ));
        }
    }
    pred.check_same_geometry("pred", truth, "truth")
}

fn mask(labels: &Array3<u8>, rule: &Rule) -> Array3<bool> {
    let mut lut = [false; 256];
    for (v, slot) in lut.iter_mut().enumerate() {
        *slot = rule.matches(v as u8);
    }
    let mut out = Array3::from_elem(labels.dim(), false);
    let planes: Vec<_> = out.outer_iter_mut().zip(labels.outer_iter()).collect();
    planes
        .into_par_iter()
        .for_each(|(mut o, l)| o.zip_mut_with(&l, |o, &l| *o = lut[l as usize]));
    out
}

/// Compares two label volumes class by class (after [`check_pair`]).
pub fn evaluate(
    pred: &Volume,
    truth: &Volume,
    classes: &[ClassSpec],
    detect: &[String],
) -> Result<Vec<ClassResult>, String> {
    check_pair(&pred.header, &truth.header)?;
    let (p, t) = (
        pred.label().expect("label volume"),
        truth.label().expect("label volume"),
    );
    let spacing = truth.header.spacing;
    Ok(classes
        .iter()
        .map(|c| {
            let (pm, tm) = rayon::join(|| mask(p, &c.rule), || mask(t, &c.rule));
            let metrics = binary_metrics(pm.view(), tm.view(), spacing);
            let detection = detect
                .contains(&c.name)
                .then(|| detection(pm.view(), tm.view(), spacing));
            ClassResult {
                name: c.name.clone(),
                metrics,
                detection,
            }
        })
        .collect())
}

/// `{"liver": {"dice": ..., ...}, "lesion": {..., "detection": {...}}}`.
pub fn to_json(results: &[ClassResult]) -> Value {
    let mut m = Map::new();
    for r in results {
        let mut v = r.metrics.to_json();
        if let Some(d) = &r.detection {
            v["detection"] = d.to_json();
        }
        m.insert(r.name.clone(), v);
    }
    Value::Object(m)
}

/// A number for CSV: shortest round-trip form.
pub fn fmt_f64(x: f64) -> String {
    format!("{x}")
}

/// CSV columns written by the node, after `class`.
pub const CSV_COLUMNS: [&str; 14] = [
    "dice",
    "voe",
    "rvd",
    "asd_mm",
    "msd_mm",
    "hd95_mm",
    "pred_voxels",
    "truth_voxels",
    "true_positive",
    "false_positive",
    "missed",
    "truth_lesions",
    "pred_lesions",
    "note",
];

/// The CSV cells of one class (same order as [`CSV_COLUMNS`]).
pub fn csv_cells(r: &ClassResult) -> Vec<String> {
    let mut cells: Vec<String> = METRIC_NAMES
        .iter()
        .map(|n| r.metric(n).map(fmt_f64).unwrap_or_default())
        .collect();
    cells.push(r.metrics.pred_voxels.to_string());
    cells.push(r.metrics.truth_voxels.to_string());
    match &r.detection {
        Some(d) => {
            for n in [
                d.true_positive,
                d.false_positive,
                d.missed,
                d.truth_lesions,
                d.pred_lesions,
            ] {
                cells.push(n.to_string());
            }
        }
        None => cells.extend(std::iter::repeat_n(String::new(), 5)),
    }
    cells.push(crate::csv::quote(&r.note()));
    cells
}

/// The node's CSV: a header line and one row per class.
pub fn to_csv(results: &[ClassResult]) -> String {
    let mut s = format!("class,{}\n", CSV_COLUMNS.join(","));
    for r in results {
        s.push_str(&format!("{},{}\n", r.name, csv_cells(r).join(",")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::s;
    use voxflow_runtime::stream::VolumeData;

    fn vol(a: Array3<u8>, spacing: [f64; 3]) -> Volume {
        let (nk, nj, ni) = a.dim();
        Volume::new(
            Header::new(StreamType::Label, [nk, nj, ni], spacing),
            VolumeData::Label(a),
        )
    }

    #[test]
    fn class_rules() {
        let c = parse_classes(&["liver:>=1", "lesion:==2", "x: 1, 3", "y:<2", "z:!=0"]).unwrap();
        assert_eq!(c[0].rule, Rule::Ge(1));
        assert_eq!(c[2].rule, Rule::In(vec![1, 3]));
        assert!(c[2].rule.matches(3) && !c[2].rule.matches(2));
        assert!(c[3].rule.matches(1) && !c[3].rule.matches(2));
        assert!(parse_class("liver").is_err());
        assert!(parse_class("liver:>=300").unwrap_err().contains("300"));
        assert!(parse_classes(&["a:1", "a:2"]).is_err());
        assert!(check_detection(&c, &["nope".into()])
            .unwrap_err()
            .contains("nope"));
    }

    /// Two 3x3x3 cubes, liver = both, lesion = one of them; hand-computed values.
    #[test]
    fn hand_case_liver_and_lesion() {
        let mut t = Array3::<u8>::zeros((10, 10, 10));
        t.slice_mut(s![2..5, 2..5, 2..5]).fill(2);
        let mut p = Array3::<u8>::zeros((10, 10, 10));
        // Same cube shifted 2 columns: label 1 there, so the lesion is missed.
        p.slice_mut(s![2..5, 2..5, 4..7]).fill(1);
        let r = evaluate(
            &vol(p, [2.0, 1.0, 0.5]),
            &vol(t, [2.0, 1.0, 0.5]),
            &parse_classes(&DEFAULT_CLASSES).unwrap(),
            &["lesion".into()],
        )
        .unwrap();
        // Liver: overlap 1 column of 9 voxels of 27 each: Dice = 18/54.
        assert!((r[0].metrics.dice.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert!((r[0].metrics.voe.unwrap() - (1.0 - 9.0 / 45.0)).abs() < 1e-12);
        // MSD = shift of 2 columns of 0.5 mm.
        assert_eq!(r[0].metrics.msd_mm, Ok(1.0));
        assert_eq!(r[1].metrics.dice, Ok(0.0));
        assert_eq!(r[1].metrics.asd_mm, Err(Undefined::PredEmpty));
        let d = r[1].detection.as_ref().unwrap();
        assert_eq!((d.true_positive, d.missed, d.false_positive), (0, 1, 0));
        let j = to_json(&r);
        assert_eq!(j["lesion"]["asd_mm"], Value::Null);
        assert_eq!(j["lesion"]["asd_mm_note"], "pred empty");
        assert!(j["liver"].get("detection").is_none());
        let csv = to_csv(&r);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0].split(',').count(), 15);
        assert!(
            lines[2].starts_with("lesion,0,1,-1,,,,0,27,0,0,1,1,0,"),
            "{}",
            lines[2]
        );
        assert!(lines[2].ends_with("asd_mm: pred empty; msd_mm: pred empty; hd95_mm: pred empty"));
    }

    #[test]
    fn geometry_mismatch_names_both() {
        let a = vol(Array3::zeros((4, 5, 6)), [1.0, 1.0, 1.0]);
        let b = vol(Array3::zeros((4, 5, 7)), [1.0, 1.0, 1.0]);
        let e = check_pair(&a.header, &b.header).unwrap_err();
        assert!(e.contains("6x5x4") && e.contains("7x5x4"), "{e}");
        let c = vol(Array3::zeros((4, 5, 6)), [1.0, 1.0, 0.9]);
        let e = check_pair(&a.header, &c.header).unwrap_err();
        assert!(e.contains("0.9000"), "{e}");
    }
}
