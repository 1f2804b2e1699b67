//! The report outputs of the shipped graphs: files named from the output's stem, the HTML page
//! opened in headless Chromium (title, tables, images loaded, a non-blank screenshot), the
//! statistics against an independent count, and the `report` / `truth` switches.
//! Real-scan tests need `$VOXFLOW_DATA`; every test that opens a page needs `chromium`.

mod common;

use common::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use voxflow_nodes::eval::metrics::{evaluate, parse_classes, DEFAULT_CLASSES};
use voxflow_nodes::io::read_volume::read_any;
use voxflow_nodes::report::report::fmt_ml;
use voxflow_runtime::{StreamType, Volume};
use voxflow_volume::{label_components, Connectivity};

/// Runs voxflow in `dir` and panics with its stderr when it fails.
fn voxflow_in(dir: &Path, args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_voxflow"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run voxflow");
    assert!(
        o.status.success(),
        "voxflow {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn graph(name: &str) -> String {
    root().join("graphs").join(name).display().to_string()
}

/// The `chromium` binary; fails the test with what to do when it is missing.
fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("chromium"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "chromium is missing: the report tests open the HTML report in headless Chromium. \
             Install the Debian package `chromium` (scripts/setup-chromium.sh does, as root; \
             `make test` runs it)"
        )
    })
}

/// Runs headless Chromium on a page with extra arguments (killed after 120 s); returns its
/// stdout. Output goes through files: a page dump fills a pipe long before Chromium exits.
fn chromium_run(page: &Path, dir: &Path, extra: &[String]) -> String {
    let (out, err) = (dir.join("chromium.out"), dir.join("chromium.err"));
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium-profile").display()
        ))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::from(
            std::fs::File::create(&out).expect("chromium.out"),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(&err).expect("chromium.err"),
        ))
        .spawn()
        .expect("start chromium");
    let t = Instant::now();
    while child.try_wait().expect("wait for chromium").is_none() {
        if t.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s on {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let stdout = std::fs::read_to_string(&out).expect("chromium output");
    if stdout.is_empty() {
        eprintln!(
            "chromium stderr:\n{}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
    }
    stdout
}

/// What Chromium made of a report page.
struct Rendered {
    dom: String,
    /// RGB pixels of the screenshot.
    shot: Vec<[u8; 3]>,
}

fn render(page: &Path, dir: &Path) -> Rendered {
    let dom = chromium_run(page, dir, &["--dump-dom".into()]);
    assert!(dom.contains("</html>"), "chromium --dump-dom gave no page");
    let shot_path = dir.join("screenshot.png");
    chromium_run(
        page,
        dir,
        &[
            format!("--screenshot={}", shot_path.display()),
            "--window-size=1200,2000".into(),
        ],
    );
    let shot = decode_png(&std::fs::read(&shot_path).expect("screenshot written"));
    Rendered { dom, shot }
}

fn decode_png(bytes: &[u8]) -> Vec<[u8; 3]> {
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut r = dec.read_info().expect("png header");
    let mut buf = vec![0; r.output_buffer_size().expect("png size")];
    let info = r.next_frame(&mut buf).expect("png data");
    let ch = info.color_type.samples();
    assert!(
        ch >= 3,
        "expected an RGB(A) image, got {:?}",
        info.color_type
    );
    buf[..info.buffer_size()]
        .chunks(ch)
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

/// The text between `<table id="ID"` and its `</table>`.
fn table<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<table id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table `{id}` in the page"));
    let end = html[start..].find("</table>").expect("table end") + start;
    &html[start..end]
}

/// Text of the element with `id="ID"` (no nested tags).
fn by_id<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no element `{id}`"));
    let s = &html[at + id.len() + 6..];
    &s[..s.find('<').expect("closing tag")]
}

/// `<img>` tags of the page.
fn images(html: &str) -> Vec<&str> {
    html.match_indices("<img ")
        .map(|(i, _)| &html[i..i + html[i..].find('>').expect("img end")])
        .collect()
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let i = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&tag[i..i + tag[i..].find('"')?])
}

/// Standard base64, for comparing embedded images with the PNG files.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            s.push(if k <= c.len() {
                A[(n >> shift & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    s
}

/// The checks every report page must pass; returns the page as rendered.
fn check_page(dir: &Path, stem: &str, case: &str) -> Rendered {
    let html_path = dir.join(format!("{stem}.html"));
    let html = std::fs::read_to_string(&html_path).expect("report written");
    let stats: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{stem}.stats.json"))).expect("stats written"),
    )
    .expect("stats JSON");
    assert_eq!(stats["case"], case);

    // The report shows the numbers of the stats file.
    let num = |k: &str| stats[k].as_f64().unwrap_or_else(|| panic!("stats `{k}`"));
    assert_eq!(
        by_id(&html, "liver_volume_ml"),
        format!("{:.1}", num("liver_volume_ml"))
    );
    assert_eq!(
        by_id(&html, "lesion_count"),
        stats["lesion_count"].to_string()
    );
    for k in ["lesion_total_ml", "lesion_largest_ml"] {
        assert_eq!(by_id(&html, k), fmt_ml(num(k)));
    }
    assert_eq!(
        by_id(&html, "lesion_largest_diameter_mm"),
        format!("{:.1}", num("lesion_largest_diameter_mm"))
    );

    // The embedded images are the overlay files, byte for byte; the largest-area slices first.
    let overlays = dir.join(format!("{stem}_overlays"));
    let files = std::fs::read_dir(&overlays)
        .expect("overlay folder")
        .count();
    let embedded = images(&html);
    assert!(files > 0, "no overlay images");
    assert_eq!(embedded.len(), files);
    let mut ks = Vec::new();
    for t in &embedded {
        let k: usize = attr(t, "alt")
            .unwrap()
            .trim_start_matches("slice ")
            .parse()
            .unwrap();
        let f = overlays.join(format!("slice_{k:03}.png"));
        let src = attr(t, "src")
            .unwrap()
            .trim_start_matches("data:image/png;base64,");
        assert_eq!(
            base64(&std::fs::read(&f).unwrap()),
            src,
            "{} differs",
            f.display()
        );
        ks.push(k);
    }
    let captions: Vec<&str> = html
        .match_indices("<figcaption>")
        .map(|(i, _)| &html[i..])
        .collect();
    let highlights = captions
        .iter()
        .take_while(|c| c.split("</figcaption>").next().unwrap().contains("largest"))
        .count();
    let largest = captions
        .iter()
        .filter(|c| c.split("</figcaption>").next().unwrap().contains("largest"))
        .count();
    assert!(
        highlights >= 1 && highlights == largest,
        "largest-area slices not first"
    );
    assert!(
        ks[highlights..].windows(2).all(|w| w[0] < w[1]),
        "other slices not in order: {ks:?}"
    );

    // The report waited for every node upstream of it.
    let timings = table(&html, "timings");
    for node in [
        "ct", "window", "eq", "liver", "crop", "lesion", "merge", "crf", "label",
    ] {
        assert!(
            timings.contains(&format!("<tr><td>{node}</td>")),
            "node `{node}` missing from the timings: {timings}"
        );
    }
    // Each FCN says where it ran.
    let liver_row = timings
        .lines()
        .find(|l| l.starts_with("<tr><td>liver</td>"))
        .expect("liver row");
    assert!(
        liver_row.contains("device: ") && liver_row.contains("ExecutionProvider"),
        "the liver FCN's row does not say where it ran: {liver_row}"
    );

    let page = render(&html_path, dir);
    assert!(
        page.dom
            .contains(&format!("<title>voxflow report: {case}</title>")),
        "title"
    );
    assert!(
        page.dom.contains("data-loaded=\"1\""),
        "the load handler did not run"
    );
    let imgs = images(&page.dom);
    assert_eq!(imgs.len(), files);
    for t in &imgs {
        assert_eq!(
            attr(t, "data-width"),
            Some("512"),
            "image did not load: {}",
            &t[..80.min(t.len())]
        );
    }
    let rows = table(&page.dom, "summary").matches("<tr>").count();
    assert_eq!(rows, 5, "summary rows");
    let lesion_rows = stats["lesion_count"].as_u64().unwrap() as usize;
    if lesion_rows > 0 {
        assert_eq!(
            table(&page.dom, "lesions").matches("<tr>").count(),
            lesion_rows + 1
        );
    }

    // Not blank: many grey levels (the scan) on a mostly white page.
    let distinct: std::collections::HashSet<[u8; 3]> = page.shot.iter().copied().collect();
    let dark = page
        .shot
        .iter()
        .filter(|p| p.iter().all(|&c| c < 60))
        .count();
    assert!(
        distinct.len() > 200,
        "screenshot has {} colours",
        distinct.len()
    );
    assert!(
        dark > page.shot.len() / 100,
        "screenshot shows no image ({dark} dark pixels)"
    );
    page
}

/// The CT graph on `phantom:small` in `dir`, output `seg.nii.gz`, with one more `--set`.
fn run_phantom(dir: &Path, set: &str) {
    voxflow_in(
        dir,
        &[
            "run",
            &graph("ct_liver_lesion.yaml"),
            "-q",
            "--set",
            "input=phantom:small",
            "--set",
            "output=seg.nii.gz",
            "--set",
            set,
        ],
    );
}

/// Pixels of a clear hue: green, blue.
fn count_hues(px: &[[u8; 3]]) -> (usize, usize) {
    let green = px
        .iter()
        .filter(|[r, g, b]| *g as i32 > *r as i32 + 60 && *g as i32 > *b as i32 + 60)
        .count();
    let blue = px
        .iter()
        .filter(|[r, g, b]| *b as i32 > *r as i32 + 60 && *b as i32 > *g as i32 + 30)
        .count();
    (green, blue)
}

#[test]
fn phantom_report_from_the_ct_graph() {
    let dir = temp_dir("report-phantom");
    // A relative output on the command line: every file lands beside it, named from its stem.
    // A relative model on the command line resolves against the current directory, the other
    // model of the report's list against the graph's folder.
    std::os::unix::fs::symlink(
        root().join("models/ct_lesion.onnx"),
        dir.join("lesion.onnx"),
    )
    .unwrap();
    run_phantom(&dir, "lesion_model=lesion.onnx");
    for f in ["seg.nii.gz", "seg.html", "seg.stats.json", "seg_overlays"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let page = check_page(&dir, "seg", "phantom seed 1");
    let about = table(&page.dom, "about");
    for m in [
        format!("{}: version", dir.join("lesion.onnx").display()),
        format!(
            "{}: version",
            Path::new(&graph(".."))
                .join("models/ct_liver.onnx")
                .display()
        ),
    ] {
        assert!(about.contains(&m), "{m} not in {about}");
    }
    // The shipped CT models are int8, and the report says so.
    assert!(about.contains("int8 QDQ"), "{about}");
    // The graph row names the included report part with the SHA-256 of its content.
    let part = Path::new(&graph("parts/report.yaml")).to_path_buf();
    let sha = Sha256::digest(std::fs::read(&part).unwrap());
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    let row = format!("includes {}, SHA-256 {hex}", part.display());
    assert!(about.contains(&row), "{row} not in {about}");
    // Without truth: no metrics, outlines in the liver colour on the screenshot.
    assert!(!page.dom.contains("id=\"metrics\""));
    let (green, _) = count_hues(&page.shot);
    assert!(
        green > 100,
        "no liver outline on the screenshot ({green} green pixels)"
    );
}

#[test]
fn real_case_with_truth() {
    let (Some(ct), Some(truth)) = (
        data_file("ircadb01_small_ct.nii.gz"),
        data_file("ircadb01_small_label.nii.gz"),
    ) else {
        return;
    };
    let dir = temp_dir("report-real");
    let out = dir.join("case01.nii.gz");
    voxflow_in(
        &dir,
        &[
            "run",
            &graph("ct_liver_lesion.yaml"),
            "-q",
            "--set",
            &format!("input={}", ct.display()),
            "--set",
            &format!("truth={}", truth.display()),
            "--set",
            &format!("output={}", out.display()),
        ],
    );
    let page = check_page(&dir, "case01", "ircadb01_small_ct");

    // Statistics against an independent count on the written segmentation.
    let seg = read_any(&out, Some(StreamType::Label), None).unwrap();
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("case01.stats.json")).unwrap())
            .unwrap();
    let l = seg.label().unwrap();
    let [dk, dj, di] = seg.header.spacing;
    let liver = l.iter().filter(|&&v| v >= 1).count() as f64 * dk * dj * di / 1000.0;
    let ml = stats["liver_volume_ml"].as_f64().unwrap();
    assert!((ml - liver).abs() < 1e-6 * liver, "{ml} vs {liver}");
    let (_, n) = label_components(l.mapv(|v| v == 2).view(), Connectivity::TwentySix);
    assert!(n > 0, "no lesion predicted on ircadb01");
    assert_eq!(stats["lesion_count"], n);
    let total: f64 = stats["lesions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["volume_ml"].as_f64().unwrap())
        .sum();
    let lesion = l.iter().filter(|&&v| v == 2).count() as f64 * dk * dj * di / 1000.0;
    assert!((total - lesion).abs() < 1e-6 * lesion);

    // The metrics table is the metrics of the written file against the truth.
    let t: Volume = read_any(&truth, Some(StreamType::Label), None).unwrap();
    let m = evaluate(
        &seg,
        &t,
        &parse_classes(&DEFAULT_CLASSES).unwrap(),
        &["lesion".into()],
    )
    .unwrap();
    let rows = table(&page.dom, "metrics");
    for r in &m {
        let dice = format!(
            "<td>{}</td><td class=\"n\">{:.3}</td>",
            r.name,
            r.metrics.dice.unwrap()
        );
        assert!(rows.contains(&dice), "{dice} not in {rows}");
    }
    assert!(page.dom.contains("true lesions detected"));

    // Figure 7 colours in the overlays: correct liver (green) and correct lesion (blue).
    let (mut green, mut blue) = (0, 0);
    for e in std::fs::read_dir(dir.join("case01_overlays")).unwrap() {
        let (g, b) = count_hues(&decode_png(&std::fs::read(e.unwrap().path()).unwrap()));
        green += g;
        blue += b;
    }
    assert!(green > 1000 && blue > 100, "green {green}, blue {blue}");
}

#[test]
fn report_switch_and_truth_switch() {
    let dir = temp_dir("report-off");
    run_phantom(&dir, "report=false");
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["seg.nii.gz"]);

    // Both shipped graphs validate with each switch on and off.
    for g in ["ct_liver_lesion.yaml", "mri_liver.yaml"] {
        voxflow_in(&dir, &["check", &graph(g)]);
    }
    // `${truth:set}` switches are checked the other way too: here with truth empty, where
    // the switched-off node's path is not a NIfTI name.
    let g = write_graph(
        &dir,
        "t.yaml",
        "graph: t\nparams:\n  truth: { default: \"t.nii.gz\" }\nnodes:\n  ct: { kind: read_volume, path: \"phantom:small\" }\n  w: { kind: write_volume, in: ct, path: $truth, enabled: \"${truth:set}\" }\n",
    );
    let o = voxflow(&["check", &g.display().to_string()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains(":6:") && err.contains("(with truth = \"\")"),
        "{err}"
    );
}

/// Chromium arguments for the viewer: WebGL2 on the CPU (SwiftShader) and virtual time for
/// NiiVue to start before the DOM dump or screenshot.
fn webgl_args() -> Vec<String> {
    [
        "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader",
        "--virtual-time-budget=30000",
        "--force-device-scale-factor=1",
    ]
    .map(String::from)
    .to_vec()
}

/// The viewer's state in a DOM dump: `data-state`, `data-slice` and the canvas rectangle.
struct ViewerState {
    state: String,
    slice: Option<usize>,
    rect: Option<[usize; 4]>,
}

fn viewer_state(dom: &str) -> ViewerState {
    let at = dom
        .find("<section id=\"viewer\"")
        .expect("no viewer section");
    let tag = &dom[at..at + dom[at..].find('>').expect("section tag end")];
    let errors = dom
        .find("<html")
        .map(|i| &dom[i..i + dom[i..].find('>').unwrap()])
        .and_then(|t| attr(t, "data-js-errors"));
    assert_eq!(errors, None, "JavaScript errors on the page");
    let rect = attr(tag, "data-rect").map(|r| {
        let v: Vec<usize> = r.split(',').map(|x| x.parse().unwrap()).collect();
        [v[0], v[1], v[2], v[3]]
    });
    ViewerState {
        state: attr(tag, "data-state").unwrap_or_default().to_string(),
        slice: attr(tag, "data-slice").map(|k| k.parse().unwrap()),
        rect,
    }
}

/// The DOM and the screenshot (RGB, width 1200) of a page with WebGL, `hash` after its URL.
fn render_webgl(page: &Path, dir: &Path, hash: &str) -> (String, Vec<[u8; 3]>) {
    let url = PathBuf::from(format!("{}{hash}", page.display()));
    let dom = chromium_run(
        &url,
        dir,
        &[["--dump-dom".to_string()].as_slice(), &webgl_args()].concat(),
    );
    let shot = dir.join("viewer.png");
    let mut args = webgl_args();
    args.push(format!("--screenshot={}", shot.display()));
    args.push("--window-size=1200,1600".into());
    chromium_run(&url, dir, &args);
    (
        dom,
        decode_png(&std::fs::read(&shot).expect("screenshot written")),
    )
}

/// The pixels of a rectangle `[x, y, w, h]` of a 1200-pixel-wide screenshot.
fn crop(shot: &[[u8; 3]], [x, y, w, h]: [usize; 4]) -> Vec<[u8; 3]> {
    assert!(
        x + w <= 1200 && (y + h) * 1200 <= shot.len(),
        "{x},{y},{w},{h} off the screenshot"
    );
    (y..y + h)
        .flat_map(|r| shot[r * 1200 + x..r * 1200 + x + w].iter().copied())
        .collect()
}

#[test]
fn viewer_shows_and_scrolls_the_phantom() {
    let dir = temp_dir("report-viewer");
    run_phantom(&dir, "report=true");
    let page = dir.join("seg.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // One file: nothing loaded from elsewhere.
    for external in ["<script src", "<link", "<iframe", "src=\"http", "src=\"//"] {
        assert!(!html.contains(external), "the page loads `{external}`");
    }
    // The viewer sits between the summary tables and the PNG slices.
    let (summary, viewer, slices) = (
        html.find("<table id=\"summary\"").unwrap(),
        html.find("<section id=\"viewer\"").unwrap(),
        html.find("<h2>Slices</h2>").unwrap(),
    );
    assert!(summary < viewer && viewer < slices);

    let (dom, shot) = render_webgl(&page, &dir, "");
    let before = viewer_state(&dom);
    assert_eq!(before.state, "ready", "viewer did not start");
    let rect = before.rect.expect("canvas rectangle");
    let k0 = before.slice.expect("slice shown");
    let planes = crop(&shot, rect);
    // Not blank: a blank canvas is one colour; the viewer shows grey levels and the label.
    let distinct: std::collections::HashSet<[u8; 3]> = planes.iter().copied().collect();
    assert!(
        distinct.len() > 100,
        "canvas has {} colours",
        distinct.len()
    );
    let (green, blue) = count_hues(&planes);
    assert!(
        green > 1000,
        "no liver on the viewer ({green} green pixels)"
    );
    assert!(blue > 20, "no lesion on the viewer ({blue} blue pixels)");

    // Five wheel notches over the axial plane: five slices on, and another picture.
    let (dom, shot2) = render_webgl(&page, &dir, "#viewer-scroll=5");
    let after = viewer_state(&dom);
    assert_eq!(after.state, "ready");
    let k1 = after.slice.expect("slice shown");
    assert_eq!(k0.abs_diff(k1), 5, "slice {k0} -> {k1}");
    let changed = planes
        .iter()
        .zip(crop(&shot2, after.rect.unwrap()))
        .filter(|(a, b)| *a != b)
        .count();
    assert!(
        changed > planes.len() / 50,
        "scrolling changed {changed} pixels"
    );
}

#[test]
fn viewer_switch() {
    let dir = temp_dir("report-viewer-switch");
    let g = |viewer: bool| {
        write_graph(
            &dir,
            &format!("v{viewer}.yaml"),
            &format!(
                "graph: v\nnodes:\n  ct: {{ kind: read_volume, path: \"phantom:small\" }}\n  gt: {{ kind: read_volume, path: \"phantom:small\", as: label }}\n  report: {{ kind: report, image: ct, label: gt, path: v{viewer}.html, viewer: {viewer} }}\n"
            ),
        )
    };
    for viewer in [true, false] {
        voxflow_in(&dir, &["run", "-q", &g(viewer).display().to_string()]);
        let html = std::fs::read_to_string(dir.join(format!("v{viewer}.html"))).unwrap();
        assert_eq!(html.contains("<section id=\"viewer\""), viewer);
        assert_eq!(html.contains("export const esm"), viewer);
        assert!(html.contains("<h2>Slices</h2>"));
    }
}
