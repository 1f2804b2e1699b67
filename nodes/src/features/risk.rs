//! `risk`: a user-supplied linear model on the survival features of one region -> low/high.

use super::survival_features::{self as sf, Region, RegionRow};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use voxflow_radiomics::{feature_names, Settings};
use voxflow_runtime::decl::{did_you_mean, PortType};
use voxflow_runtime::stream::StreamType;
use voxflow_runtime::{BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeParams, TypedKind};

pub struct Risk;

const DOCS: &str = r#"
Applies a linear model to the `survival_features` of one region:
`score = intercept + sum(coefficient * feature)`, risk `high` when `score >= threshold`, else
`low`. The features are computed here from `image` and `label` with the same code and
settings as `survival_features` (only for `region`). The model file (JSON, or YAML for `.yaml`/
`.yml`) is read when the graph starts:

```yaml
name: my model            # optional
coefficients:             # feature name -> coefficient
  original_shape_Sphericity: -2.0
  original_firstorder_Mean: 0.01
intercept: 0.5
threshold: 0.0
```

(`features: [names]` with `coefficients: [numbers]` of the same length also works.) Names are
the `survival_features` columns: PyRadiomics names, `volume_ml`, `voxels`; an unknown name is
an error naming it. Standardised models: fold the means and scales into the coefficients and
the intercept. A feature that is undefined for the region (e.g. GLCM of scattered voxels) is
an error naming it; an empty or one-voxel region (status `no region` / `undefined`) gives a row
with an empty score and the reason in `note`.
`region: each_lesion` scores every lesion. voxflow ships no fitted model.

`json` gets `{"model": ..., "intercept": ..., "threshold": ..., "results": [{"region", "id",
"score", "risk", "note"}]}`; `csv` the same per row.
"#;

/// A linear model read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct RiskModel {
    pub name: String,
    pub terms: Vec<(String, f64)>,
    pub intercept: f64,
    pub threshold: f64,
}

fn number(v: &Value, what: &str) -> Result<f64, String> {
    v.as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("`{what}` must be a finite number, got {v}"))
}

impl RiskModel {
    /// Parses a model from JSON or YAML text and checks its feature names.
    pub fn parse(text: &str, yaml: bool) -> Result<RiskModel, String> {
        let v: Value = if yaml {
            serde_saphyr::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?
        } else {
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?
        };
        let obj = v
            .as_object()
            .ok_or("the model must be a mapping with `coefficients`, `intercept`, `threshold`")?;
        for k in obj.keys() {
            if !["name", "features", "coefficients", "intercept", "threshold"].contains(&k.as_str())
            {
                return Err(format!(
                    "unknown key `{k}` (keys: name, features, coefficients, intercept, threshold)"
                ));
            }
        }
        let need = |k: &str| obj.get(k).ok_or_else(|| format!("`{k}` is missing"));
        let terms: Vec<(String, f64)> = match (obj.get("features"), need("coefficients")?) {
            (None, Value::Object(m)) => {
                m.iter().map(|(n, c)| Ok((n.clone(), number(c, &format!("coefficients.{n}"))?))).collect::<Result<_, String>>()?
            }
            (Some(Value::Array(names)), Value::Array(coefs)) => {
                if names.len() != coefs.len() {
                    return Err(format!("{} features but {} coefficients", names.len(), coefs.len()));
                }
                names
                    .iter()
                    .zip(coefs)
                    .map(|(n, c)| {
                        let n = n.as_str().ok_or_else(|| format!("feature name {n} is not a string"))?;
                        Ok((n.to_string(), number(c, &format!("coefficient of {n}"))?))
                    })
                    .collect::<Result<_, String>>()?
            }
            _ => {
                return Err("`coefficients` must map feature names to numbers (or be a list beside a `features` list)".into())
            }
        };
        if terms.is_empty() {
            return Err("the model has no feature".into());
        }
        let known = known_columns();
        for (n, (name, _)) in terms.iter().enumerate() {
            if !known.contains(name) {
                return Err(format!(
                    "feature `{name}` is not a survival_features column{}",
                    did_you_mean(name, known.iter().map(String::as_str))
                ));
            }
            if terms[..n].iter().any(|(m, _)| m == name) {
                return Err(format!("feature `{name}` is listed twice"));
            }
        }
        Ok(RiskModel {
            name: obj
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            terms,
            intercept: number(need("intercept")?, "intercept")?,
            threshold: number(need("threshold")?, "threshold")?,
        })
    }

    /// Reads a model file; YAML for `.yaml`/`.yml`, else JSON.
    pub fn load(path: &Path) -> Result<RiskModel, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read risk model {}: {e}", path.display()))?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        RiskModel::parse(&text, ext == "yaml" || ext == "yml")
            .map_err(|e| format!("risk model {}: {e}", path.display()))
    }

    /// The score of a row; an error names a feature the row lacks or leaves undefined.
    pub fn score(&self, row: &RegionRow) -> Result<f64, String> {
        let mut s = self.intercept;
        for (name, c) in &self.terms {
            match row.value(name) {
                Some(Some(x)) => s += c * x,
                Some(None) => {
                    return Err(format!(
                        "feature `{name}` needed by the risk model is undefined for region {} ({})",
                        row.region, row.note
                    ))
                }
                None => {
                    return Err(format!(
                        "feature `{name}` needed by the risk model is missing for region {}",
                        row.region
                    ))
                }
            }
        }
        Ok(s)
    }

    /// `high` when `score >= threshold`.
    pub fn class(&self, score: f64) -> &'static str {
        if score >= self.threshold {
            "high"
        } else {
            "low"
        }
    }
}

fn known_columns() -> Vec<String> {
    let mut k = feature_names();
    k.push("volume_ml".into());
    k.push("voxels".into());
    k
}

/// The decision for one region.
#[derive(Clone, Debug, PartialEq)]
pub struct RiskResult {
    pub region: String,
    pub id: Option<usize>,
    pub score: Option<f64>,
    pub risk: Option<&'static str>,
    pub note: String,
}

/// Applies the model to each row; empty regions get no score.
pub fn apply(model: &RiskModel, rows: &[RegionRow]) -> Result<Vec<RiskResult>, String> {
    rows.iter()
        .map(|r| {
            let (score, risk) = if r.status == "no region" || r.status == "undefined" {
                (None, None)
            } else {
                let s = model.score(r)?;
                (Some(s), Some(model.class(s)))
            };
            Ok(RiskResult {
                region: r.region.clone(),
                id: r.id,
                score,
                risk,
                note: r.note.clone(),
            })
        })
        .collect()
}

pub fn to_json(model: &RiskModel, path: &Path, results: &[RiskResult]) -> Value {
    let rows: Vec<Value> = results
        .iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert("region".into(), Value::from(r.region.clone()));
            m.insert("id".into(), r.id.map(Value::from).unwrap_or(Value::Null));
            m.insert(
                "score".into(),
                r.score.map(Value::from).unwrap_or(Value::Null),
            );
            m.insert(
                "risk".into(),
                r.risk.map(Value::from).unwrap_or(Value::Null),
            );
            m.insert("note".into(), Value::from(r.note.clone()));
            Value::Object(m)
        })
        .collect();
    serde_json::json!({
        "model": path.display().to_string(),
        "name": model.name,
        "intercept": model.intercept,
        "threshold": model.threshold,
        "results": rows,
    })
}

pub fn to_csv(model: &RiskModel, results: &[RiskResult]) -> String {
    let mut s = String::from("region,id,score,threshold,risk,note\n");
    for r in results {
        s.push_str(&format!(
            "{},{},{},{},{},{}\n",
            r.region,
            r.id.map(|i| i.to_string()).unwrap_or_default(),
            r.score.map(|x| format!("{x}")).unwrap_or_default(),
            model.threshold,
            r.risk.unwrap_or_default(),
            crate::csv::quote(&r.note)
        ));
    }
    s
}

/// Params of `risk`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct RiskParams {
    /// linear model file (JSON, or YAML for .yaml/.yml)
    pub model: PathBuf,
    /// region whose features the model reads
    #[param(default = Region::Lesions)]
    pub region: Region,
    /// fixed bin width (as in survival_features)
    #[param(default = 25.0, min = 1e-9)]
    pub bin_width: f64,
    /// JSON output file
    #[param(writes)]
    pub json: Option<PathBuf>,
    /// CSV output file
    #[param(writes)]
    pub csv: Option<PathBuf>,
}

impl TypedKind for Risk {
    type Params = RiskParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            "risk",
            "Low/high risk from a user-supplied linear model on the survival features",
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

    fn check_params(&self, p: &RiskParams) -> Vec<(String, String)> {
        if p.json.is_none() && p.csv.is_none() {
            return vec![(
                "json".into(),
                "set `json` and/or `csv`, else the result goes nowhere".into(),
            )];
        }
        vec![]
    }

    fn create(&self, p: RiskParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        let model = RiskModel::load(&p.model)?;
        Ok(Box::new(RiskNode {
            model,
            model_path: p.model,
            region: p.region.name(),
            settings: sf::settings(p.bin_width),
            json: p.json,
            csv: p.csv,
        }))
    }
}

struct RiskNode {
    model: RiskModel,
    model_path: PathBuf,
    region: String,
    settings: Settings,
    json: Option<PathBuf>,
    csv: Option<PathBuf>,
}

impl Node for RiskNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let mut v = ctx.gather_many(&["image", "label"])?;
        let label = v.pop().expect("two volumes");
        let image = v.pop().expect("two volumes");
        let rows = sf::compute(
            &image,
            &label,
            std::slice::from_ref(&self.region),
            &self.settings,
        )?;
        let results = apply(&self.model, &rows)?;
        if let Some(path) = &self.json {
            let j = to_json(&self.model, &self.model_path, &results);
            sf::write(
                &ctx.output_file(path)?,
                &(serde_json::to_string_pretty(&j).expect("json") + "\n"),
            )?;
        }
        if let Some(path) = &self.csv {
            sf::write(&ctx.output_file(path)?, &to_csv(&self.model, &results))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> RegionRow {
        RegionRow {
            region: "lesions".into(),
            id: None,
            status: "ok",
            voxels: 10,
            volume_ml: 0.5,
            centroid_mm: Some([0.0; 3]),
            features: vec![
                ("original_firstorder_Mean".into(), Some(40.0)),
                ("original_glcm_Contrast".into(), None),
            ],
            note: "why".into(),
        }
    }

    #[test]
    fn parse_and_score() {
        let y = "coefficients:\n  original_firstorder_Mean: 0.5\n  volume_ml: -2\nintercept: 1\nthreshold: 20\n";
        let m = RiskModel::parse(y, true).unwrap();
        assert_eq!(m.score(&row()).unwrap(), 1.0 + 20.0 - 1.0);
        assert_eq!(m.class(20.0), "high");
        assert_eq!(m.class(19.9), "low");
        let j = r#"{"features": ["voxels"], "coefficients": [2], "intercept": 0, "threshold": 1}"#;
        assert_eq!(
            RiskModel::parse(j, false).unwrap().score(&row()).unwrap(),
            20.0
        );
    }

    #[test]
    fn clear_errors() {
        let e = RiskModel::parse(
            r#"{"coefficients": {"original_firstorder_Maen": 1}, "intercept": 0, "threshold": 0}"#,
            false,
        )
        .unwrap_err();
        assert!(
            e.contains("`original_firstorder_Maen`")
                && e.contains("did you mean `original_firstorder_Mean`"),
            "{e}"
        );
        let e = RiskModel::parse(r#"{"coefficients": {"voxels": 1}, "threshold": 0}"#, false)
            .unwrap_err();
        assert!(e.contains("`intercept` is missing"), "{e}");
        let m = RiskModel::parse(
            r#"{"coefficients": {"original_glcm_Contrast": 1}, "intercept": 0, "threshold": 0}"#,
            false,
        )
        .unwrap();
        let e = m.score(&row()).unwrap_err();
        assert!(
            e.contains("`original_glcm_Contrast`") && e.contains("undefined"),
            "{e}"
        );
        let m = RiskModel::parse(
            r#"{"coefficients": {"original_shape_Sphericity": 1}, "intercept": 0, "threshold": 0}"#,
            false,
        )
        .unwrap();
        let e = m.score(&row()).unwrap_err();
        assert!(
            e.contains("`original_shape_Sphericity`") && e.contains("missing"),
            "{e}"
        );
    }
}
