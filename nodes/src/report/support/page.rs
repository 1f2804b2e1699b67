//! The HTML page of the `report` node: summary tables, the viewer, the overlay images, the run.

use super::draw::{self, Class};
use super::viewer::{self, Viewer};
use crate::eval::metrics::{ClassResult, METRIC_NAMES};
use crate::io::dicom_source::DicomSource;
use crate::report::overlay::Drawn;
use crate::report::stats::CaseStats;
use base64::Engine;
use std::fmt::Write;
use voxflow_onnx::ModelInfo;
use voxflow_runtime::{Header, NodeTiming};

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The graph that produced a report.
pub struct GraphInfo {
    pub name: String,
    /// The graph file and its SHA-256.
    pub file: (String, String),
    /// Each graph file it includes, with its SHA-256.
    pub includes: Vec<(String, String)>,
}

/// Everything a report page shows.
pub struct Page<'a> {
    pub case: &'a str,
    pub image: &'a Header,
    pub graph: &'a GraphInfo,
    pub models: &'a [ModelInfo],
    pub stats: &'a CaseStats,
    pub metrics: Option<&'a [ClassResult]>,
    pub drawn: &'a [Drawn],
    pub viewer: Option<&'a Viewer>,
    pub timings: &'a [NodeTiming],
}

/// A lesion volume in mL as the report shows it: two decimals, or two significant digits
/// (at most four decimals) below 1 mL.
pub fn fmt_ml(v: f64) -> String {
    if v >= 1.0 || v == 0.0 {
        return format!("{v:.2}");
    }
    let decimals = (1 - v.log10().floor() as i32).clamp(2, 4) as usize;
    format!("{v:.decimals$}")
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;\
color:#222}h1{margin-bottom:0.2em}table{border-collapse:collapse;margin:0.5em 0 1.5em}\
td,th{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}td.n{text-align:right}\
th{background:#f0f0f0}figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}\
figcaption{font-size:0.9em;max-width:512px}.sw{display:inline-block;width:1em;height:1em;\
vertical-align:middle;margin:0 0.3em 0 1em;border:1px solid #888}";

fn rgb(c: [u8; 3]) -> String {
    format!("rgb({},{},{})", c[0], c[1], c[2])
}

impl Page<'_> {
    pub fn html(&self) -> String {
        let mut s = String::new();
        let title = format!("voxflow report: {}", self.case);
        let _ = write!(
            s,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}{}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
            esc(&title),
            if self.viewer.is_some() { viewer::STYLE } else { "" },
            esc(&title)
        );
        self.about(&mut s);
        self.numbers(&mut s);
        if let Some(m) = self.metrics {
            metrics_table(&mut s, m);
        }
        if let Some(v) = self.viewer {
            v.html(&mut s);
        }
        self.images(&mut s);
        self.run_table(&mut s);
        s.push_str(
            "<script>addEventListener('load',()=>{for(const i of document.images)\
             i.dataset.width=i.naturalWidth;document.body.dataset.loaded='1'});</script>\n\
             </body>\n</html>\n",
        );
        s
    }

    fn about(&self, s: &mut String) {
        let h = self.image;
        let [nk, nj, ni] = h.shape;
        let [dk, dj, di] = h.spacing;
        let source = crate::meta::source(h).unwrap_or("(unknown)");
        let mut rows = vec![
            ("case", self.case.to_string()),
            ("input", source.to_string()),
            (
                "image",
                format!(
                    "{ni} x {nj} x {nk} voxels (i, j, k), {di:.3} x {dj:.3} x {dk:.3} mm{}",
                    match crate::meta::modality(h) {
                        "" => String::new(),
                        m => format!(", {m}"),
                    }
                ),
            ),
        ];
        if let Ok(Some(d)) = DicomSource::from_header(h) {
            let f = |k: &str| match d.identifier(k) {
                "" => "-".to_string(),
                v => v.to_string(),
            };
            rows.push((
                "DICOM",
                format!(
                    "patient {}, study date {}, series {}",
                    f("PatientID"),
                    f("StudyDate"),
                    f("SeriesInstanceUID")
                ),
            ));
        }
        rows.push((
            "graph",
            format!(
                "{} ({}, SHA-256 {}{})",
                self.graph.name,
                self.graph.file.0,
                self.graph.file.1,
                self.graph
                    .includes
                    .iter()
                    .map(|(f, sha)| format!("; includes {f}, SHA-256 {sha}"))
                    .collect::<String>()
            ),
        ));
        rows.push(("voxflow", env!("CARGO_PKG_VERSION").to_string()));
        for m in self.models {
            rows.push((
                "model",
                format!(
                    "{}: version {}, {}, classes {}{}{}",
                    m.path.display(),
                    m.model_version,
                    m.modality,
                    m.classes.join(", "),
                    match m.context_slices {
                        0 => String::new(),
                        r => format!(", reads {r} neighbouring slice(s) on each side"),
                    },
                    m.quantized
                        .as_deref()
                        .map(|q| format!(", {q}"))
                        .unwrap_or_default()
                ),
            ));
        }
        s.push_str("<table id=\"about\">\n");
        for (k, v) in rows {
            let _ = writeln!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
        }
        s.push_str("</table>\n");
    }

    fn numbers(&self, s: &mut String) {
        let st = self.stats;
        s.push_str("<h2>Liver and lesions</h2>\n<table id=\"summary\">\n");
        let rows = [
            (
                "liver_volume_ml",
                "liver volume (mL)",
                format!("{:.1}", st.liver_volume_ml),
            ),
            ("lesion_count", "lesions", st.lesions.len().to_string()),
            (
                "lesion_total_ml",
                "total lesion volume (mL)",
                fmt_ml(st.lesion_total_ml()),
            ),
            (
                "lesion_largest_ml",
                "largest lesion volume (mL)",
                fmt_ml(st.lesion_largest_ml()),
            ),
            (
                "lesion_largest_diameter_mm",
                "largest lesion diameter (mm)",
                format!("{:.1}", st.lesion_largest_diameter_mm()),
            ),
        ];
        for (id, name, v) in rows {
            let _ = writeln!(
                s,
                "<tr><th>{name}</th><td class=\"n\" id=\"{id}\">{v}</td></tr>"
            );
        }
        s.push_str("</table>\n");
        if st.lesions.is_empty() {
            return;
        }
        s.push_str(
            "<table id=\"lesions\">\n<tr><th>lesion</th><th>volume (mL)</th>\
             <th>largest diameter (mm)</th><th>voxels</th><th>slices</th></tr>\n",
        );
        for l in &st.lesions {
            let _ = writeln!(
                s,
                "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{}</td><td>{}-{}</td></tr>",
                l.id, fmt_ml(l.volume_ml), l.diameter_mm, l.voxels, l.slices.0, l.slices.1
            );
        }
        s.push_str(
            "</table>\n<p>Lesions are 26-connected components of label 2; the liver volume \
             includes them; a diameter is the longest distance between two voxel centres.</p>\n",
        );
    }

    fn images(&self, s: &mut String) {
        s.push_str("<h2>Slices</h2>\n<p>");
        let legend: Vec<(&str, [u8; 3])> = if self.metrics.is_some() {
            [
                (Class::LiverCorrect, "correct liver"),
                (
                    Class::LiverWrong,
                    "wrong liver (false positive or negative)",
                ),
                (Class::LesionCorrect, "correct lesion"),
                (Class::LesionWrong, "wrong lesion"),
            ]
            .into_iter()
            .map(|(c, n)| (n, c.colour()))
            .collect()
        } else {
            vec![
                ("liver outline", draw::GREEN),
                ("lesion outline", draw::BLUE),
            ]
        };
        for (name, c) in legend {
            let _ = write!(
                s,
                "<span class=\"sw\" style=\"background:{}\"></span>{name}",
                rgb(c)
            );
        }
        s.push_str(
            "</p>\n<p>Radiological view: the patient's right on the image's left (letters at \
             the edges); square pixels. The slices with the largest liver and lesion areas come \
             first.</p>\n",
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        let (first, rest): (Vec<&Drawn>, Vec<&Drawn>) =
            self.drawn.iter().partition(|d| d.picked.largest());
        for d in first.into_iter().chain(rest) {
            let why = d.picked.reasons.join(", ");
            let _ = writeln!(
                s,
                "<figure><img src=\"data:image/png;base64,{}\" alt=\"slice {}\"><figcaption>slice {}: {}</figcaption></figure>",
                b64.encode(&d.png),
                d.picked.k,
                d.picked.k,
                esc(&why)
            );
        }
    }

    fn run_table(&self, s: &mut String) {
        s.push_str(
            "<h2>Run</h2>\n<table id=\"timings\">\n<tr><th>node</th><th>kind</th>\
             <th>wall (s)</th><th>busy (s)</th><th>slices</th><th>ran on</th></tr>\n",
        );
        for t in self.timings {
            let facts: Vec<String> = t.facts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&t.id),
                esc(&t.kind),
                t.wall_ms / 1000.0,
                t.busy_ms / 1000.0,
                t.slices,
                esc(&facts.join(", "))
            );
        }
        s.push_str("</table>\n");
    }
}

fn metrics_table(s: &mut String, results: &[ClassResult]) {
    s.push_str("<h2>Against the ground truth</h2>\n<table id=\"metrics\">\n<tr><th>class</th>");
    for n in METRIC_NAMES {
        let _ = write!(s, "<th>{n}</th>");
    }
    s.push_str("<th>note</th></tr>\n");
    for r in results {
        let _ = write!(s, "<tr><td>{}</td>", esc(&r.name));
        for n in METRIC_NAMES {
            match r.metric(n) {
                Ok(v) => {
                    let _ = write!(s, "<td class=\"n\">{v:.3}</td>");
                }
                Err(_) => s.push_str("<td class=\"n\">-</td>"),
            }
        }
        let _ = writeln!(s, "<td>{}</td></tr>", esc(&r.note()));
    }
    s.push_str("</table>\n");
    for r in results {
        if let Some(d) = &r.detection {
            let _ = writeln!(
                s,
                "<p id=\"detection\">{}: {} of {} true lesions detected, {} missed, {} predicted lesions overlap no true lesion.</p>",
                esc(&r.name),
                d.true_positive,
                d.truth_lesions,
                d.missed,
                d.false_positive
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_format_and_escaping() {
        assert_eq!(fmt_ml(84.567), "84.57");
        assert_eq!(fmt_ml(0.0), "0.00");
        assert_eq!(fmt_ml(0.5), "0.50");
        assert_eq!(fmt_ml(0.0353), "0.035");
        assert_eq!(fmt_ml(0.000883), "0.0009");
        assert_eq!(
            esc("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
