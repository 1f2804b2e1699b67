//! The `n4` and `mr_normalize` nodes and the MRI graph, run through `voxflow`.

mod common;

use common::{data_file, root, temp_dir, voxflow, voxflow_ok, write_graph};
use ndarray::{Array3, Zip};
use std::path::Path;
use voxflow_nodes::io::nifti_io::write_nifti;
use voxflow_nodes::io::read_volume::read_any;
use voxflow_nodes::preprocess::mr_normalize::normalize;
use voxflow_nodes::preprocess::n4::{make_mask, n4_kernel, n4_with_offsets, MaskMode, N4Params};
use voxflow_runtime::{Header, StreamType, VolumeData};

const SPACING: [f64; 3] = [3.0, 1.5, 1.5];

fn write_image(path: &Path, a: &Array3<f32>) {
    let (nk, nj, ni) = a.dim();
    let h = Header::new(StreamType::Image, [nk, nj, ni], SPACING);
    write_nifti(path, &h, &VolumeData::Image(a.clone())).expect("write input");
}

fn write_label(path: &Path, a: &Array3<u8>) {
    let (nk, nj, ni) = a.dim();
    let h = Header::new(StreamType::Label, [nk, nj, ni], SPACING);
    write_nifti(path, &h, &VolumeData::Label(a.clone())).expect("write label");
}

fn read_image(path: &Path) -> Array3<f32> {
    let v = read_any(path, Some(StreamType::Image), None).expect("read output");
    v.image().expect("image").clone()
}

/// Pearson correlation over the voxels where `m` is set.
fn corr(a: &Array3<f32>, b: &Array3<f32>, m: &Array3<bool>) -> f64 {
    let pairs: Vec<(f64, f64)> =
        Zip::from(a)
            .and(b)
            .and(m)
            .fold(Vec::new(), |mut v, &x, &y, &k| {
                if k {
                    v.push((x as f64, y as f64));
                }
                v
            });
    let n = pairs.len() as f64;
    let (ma, mb) = pairs
        .iter()
        .fold((0.0, 0.0), |(s, t), (x, y)| (s + x / n, t + y / n));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in &pairs {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

/// Mean and standard deviation of the values where `m` is set.
fn mean_sd(a: &Array3<f32>, m: &Array3<bool>) -> (f64, f64) {
    let v: Vec<f64> = a
        .iter()
        .zip(m)
        .filter(|(_, &k)| k)
        .map(|(&x, _)| x as f64)
        .collect();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (
        mean,
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt(),
    )
}

/// Standard deviation of the values where `m` is set.
fn sd(a: &Array3<f32>, m: &Array3<bool>) -> f64 {
    mean_sd(a, m).1
}

/// Coefficient of variation of the values where `m` is set.
fn cv(a: &Array3<f32>, m: &Array3<bool>) -> f64 {
    let (mean, sd) = mean_sd(a, m);
    sd / mean
}

/// Synthetic volume: background 0, a box "body" of 100 holding a box "organ" of 160, times a
/// smooth field. Returns (image, true bias, body mask, organ mask).
fn synthetic() -> (Array3<f32>, Array3<f32>, Array3<bool>, Array3<bool>) {
    let (nk, nj, ni) = (20, 40, 40);
    let body = Array3::from_shape_fn((nk, nj, ni), |(k, j, i)| {
        (2..18).contains(&k) && (4..36).contains(&j) && (4..36).contains(&i)
    });
    let organ = Array3::from_shape_fn((nk, nj, ni), |(k, j, i)| {
        (6..14).contains(&k) && (12..28).contains(&j) && (10..24).contains(&i)
    });
    let bias = Array3::from_shape_fn((nk, nj, ni), |(k, j, i)| {
        let (z, y, x) = (
            k as f64 / nk as f64,
            j as f64 / nj as f64,
            i as f64 / ni as f64,
        );
        (0.35 * (x - 0.5) + 0.25 * (y - 0.4).powi(2) - 0.15 * z * x).exp() as f32
    });
    let image = Array3::from_shape_fn((nk, nj, ni), |p| {
        let base = if organ[p] {
            160.0
        } else if body[p] {
            100.0
        } else {
            0.0
        };
        base * bias[p]
    });
    (image, bias, body, organ)
}

const N4_GRAPH: &str = r#"
graph: n4-test
params:
  input:  {}
  out:    { default: "out.nii.gz" }
  bias:   { default: "bias.nii.gz" }
  mask:   { default: nonzero }
  shrink: { default: 1 }
nodes:
  img:  { kind: read_volume, path: $input }
  n4:   { kind: n4, in: img, mask: $mask, shrink: $shrink }
  w1:   { kind: write_volume, in: n4, path: $out }
  w2:   { kind: write_volume, in: n4.bias, path: $bias }
"#;

/// `voxflow` arguments `-q run GRAPH --set key=value ...`.
fn run_args(g: &Path, sets: &[(&str, String)]) -> Vec<String> {
    let mut a = vec!["-q".into(), "run".into(), g.display().to_string()];
    for (k, v) in sets {
        a.push("--set".into());
        a.push(format!("{k}={v}"));
    }
    a
}

/// Runs `g` with `sets`, asserting success.
fn run_ok(g: &Path, sets: &[(&str, String)]) {
    let a = run_args(g, sets);
    voxflow_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Runs `N4_GRAPH` in `d` on `input` with more `sets`; returns (corrected, bias).
fn run_n4(d: &Path, input: &Path, sets: &[(&str, String)]) -> (Array3<f32>, Array3<f32>) {
    let g = write_graph(d, "g.yaml", N4_GRAPH);
    let (out, bias) = (d.join("out.nii.gz"), d.join("bias.nii.gz"));
    let mut all = vec![
        ("input", path(input)),
        ("out", path(&out)),
        ("bias", path(&bias)),
    ];
    all.extend_from_slice(sets);
    run_ok(&g, &all);
    (read_image(&out), read_image(&bias))
}

#[test]
fn recovers_a_known_smooth_field_and_matches_the_kernel() {
    let d = temp_dir("n4-field");
    let (image, truth, body, organ) = synthetic();
    let input = d.join("in.nii.gz");
    write_image(&input, &image);
    let (corrected, field) = run_n4(&d, &input, &[]);

    // The corrected tissues are flat again (up to a global scale), the input's were not.
    let fat = &body & &organ.mapv(|o| !o);
    for (name, m) in [("body", &fat), ("organ", &organ)] {
        let (before, after) = (cv(&image, m), cv(&corrected, m));
        assert!(
            after < 0.01 && after < before / 5.0,
            "{name}: CV {before} -> {after}"
        );
    }
    // The bias output is the true field up to a constant factor.
    let log_ratio = Zip::from(&field)
        .and(&truth)
        .map_collect(|f, t| (f / t).ln());
    let r = sd(&log_ratio, &body);
    assert!(
        r < 0.01,
        "log(bias / truth) varies by {r} (sd) over the body"
    );
    assert!(corr(&field, &truth, &body) > 0.99);
    // out = in / bias inside the mask, unchanged outside.
    Zip::from(&corrected)
        .and(&image)
        .and(&field)
        .for_each(|&c, &x, &b| {
            if x != 0.0 {
                assert!(
                    (c - x / b).abs() <= 1e-4 * c.abs().max(1.0),
                    "{c} vs {x} / {b}"
                );
            } else {
                assert_eq!(c, 0.0);
            }
        });

    // The node gives what the kernel gives when called directly.
    let p = N4Params {
        shrink: 1,
        ..N4Params::default()
    };
    let direct = n4_kernel(
        image.view(),
        make_mask(&image, MaskMode::Nonzero).view(),
        SPACING,
        &p,
    )
    .unwrap();
    let max_diff = Zip::from(&direct.bias)
        .and(&field)
        .fold(0.0f32, |m, a, b| m.max((a - b).abs()));
    assert!(max_diff < 1e-5, "node vs kernel bias differ by {max_diff}");
}

#[test]
fn constant_image_times_a_field_is_flat_again() {
    let d = temp_dir("n4-constant");
    let (_, truth, _, _) = synthetic();
    let image = truth.mapv(|b| 100.0 * b);
    let all = Array3::from_elem(image.dim(), true);
    let input = d.join("in.nii.gz");
    write_image(&input, &image);
    let (corrected, field) = run_n4(&d, &input, &[("mask", "none".into())]);
    let (before, after) = (cv(&image, &all), cv(&corrected, &all));
    assert!(after < before / 10.0, "CV {before} -> {after}");
    assert!(corr(&field, &truth, &all) > 0.99);
}

#[test]
fn mask_label_port_overrides_the_mask_param() {
    let d = temp_dir("n4-label");
    let (image, _, body, organ) = synthetic();
    // Background 0 would make `mask: none` fail (log of 0), so this also shows the label wins.
    let input = d.join("in.nii.gz");
    write_image(&input, &image);
    let lab = body.mapv(u8::from) * 3;
    let labf = d.join("lab.nii.gz");
    write_label(&labf, &lab);
    let g = write_graph(
        &d,
        "g.yaml",
        r#"
graph: n4-label
params: { input: {}, label: {}, out: {} }
nodes:
  img:  { kind: read_volume, path: $input }
  lab:  { kind: read_volume, path: $label, as: label }
  n4:   { kind: n4, in: img, mask_label: lab, mask: none, shrink: 2 }
  w1:   { kind: write_volume, in: n4, path: $out }
"#,
    );
    let out = d.join("out.nii.gz");
    run_ok(
        &g,
        &[
            ("input", path(&input)),
            ("label", path(&labf)),
            ("out", path(&out)),
        ],
    );
    let corrected = read_image(&out);
    let fat = &body & &organ.mapv(|o| !o);
    assert!(cv(&corrected, &fat) < cv(&image, &fat) / 5.0);
    // Outside the label the image is left as it is (here 0), inside it is changed.
    Zip::from(&corrected)
        .and(&image)
        .and(&body)
        .for_each(|&c, &x, &m| {
            if !m {
                assert_eq!(c, x);
            }
        });
    assert!(Zip::from(&corrected)
        .and(&image)
        .and(&body)
        .fold(false, |acc, c, x, m| acc || (*m && c != x)));
}

#[test]
fn errors_name_the_node_and_leave_no_output() {
    let d = temp_dir("n4-errors");
    let g = write_graph(&d, "g.yaml", N4_GRAPH);
    let run = |name: &str, image: &Array3<f32>, mask: &str| {
        let input = d.join(format!("{name}.nii.gz"));
        write_image(&input, image);
        let out = d.join(format!("{name}-out.nii.gz"));
        let a = run_args(
            &g,
            &[
                ("input", path(&input)),
                ("out", path(&out)),
                ("bias", path(&d.join(format!("{name}-bias.nii.gz")))),
                ("mask", mask.into()),
            ],
        );
        let o = voxflow(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!o.status.success(), "{name}: the run should fail");
        assert!(!out.exists(), "{name}: output left behind");
        let tmp = std::fs::read_dir(&d)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".voxflow-tmp")
            })
            .count();
        assert_eq!(tmp, 0, "{name}: temporary file left behind");
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let (image, _, _, _) = synthetic();
    // mask none: the zero background is inside the mask
    let e = run("zero", &image, "none");
    assert!(
        e.contains("node `n4` (n4)") && e.contains("g.yaml:11") && e.contains("not > 0"),
        "{e}"
    );
    let e = run("constant", &Array3::from_elem((8, 16, 16), 5.0), "none");
    assert!(e.contains("node `n4`") && e.contains("constant"), "{e}");
    let mut neg = image.clone();
    neg[[10, 20, 20]] = -3.0;
    let e = run("negative", &neg, "nonzero");
    assert!(e.contains("value -3") && e.contains("[10, 20, 20]"), "{e}");

    // Param checks at `voxflow check`.
    let bad = write_graph(
        &d,
        "bad.yaml",
        "graph: bad\nnodes:\n  img: { kind: read_volume, path: x.nii.gz }\n  n4: { kind: n4, in: img, control_points: 3, iterations: [] }\n",
    );
    let o = voxflow(&["check", bad.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        e.contains("control_points") && e.contains("iterations") && e.contains("bad.yaml:4"),
        "{e}"
    );
}

/// The MRI graph's preprocessing, with the FCN left out.
const PRE_GRAPH: &str = r#"
graph: mri-pre
params: { input: {}, output: {}, n4: { default: true } }
nodes:
  mr:   { kind: read_volume, path: $input, as: image }
  n4:   { kind: n4, in: mr, enabled: $n4, shrink: 2, mask: nonzero }
  norm: { kind: mr_normalize, in: mr, corrected: n4, foreground: nonzero, p_low: 1, p_high: 99 }
  save: { kind: write_volume, in: norm, path: $output }
"#;

#[test]
fn mr_normalize_reads_the_raw_image_when_n4_is_off() {
    let d = temp_dir("n4-optional");
    let (image, _, body, organ) = synthetic();
    let input = d.join("in.nii.gz");
    write_image(&input, &image);
    let g = write_graph(&d, "g.yaml", PRE_GRAPH);
    voxflow_ok(&["check", g.to_str().unwrap()]);
    let mut outs = Vec::new();
    for on in ["true", "false"] {
        let out = d.join(format!("norm-{on}.nii.gz"));
        run_ok(
            &g,
            &[
                ("input", path(&input)),
                ("output", path(&out)),
                ("n4", on.into()),
            ],
        );
        outs.push(read_image(&out));
    }
    let raw = normalize(&image, MaskMode::Nonzero, 1.0, 99.0).unwrap().0;
    assert_eq!(outs[1], raw, "n4 off: mr_normalize must see the raw image");
    assert!(
        outs[0] != raw,
        "n4 on: mr_normalize must see the corrected image"
    );
    for o in &outs {
        assert!(o.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    // Corrected then normalised: the body is flatter than without N4.
    let fat = &body & &organ.mapv(|o| !o);
    let (with, without) = (sd(&outs[0], &fat), sd(&outs[1], &fat));
    assert!(
        with < without / 3.0,
        "sd of the body: {with} with N4, {without} without"
    );
}

#[test]
fn mri_liver_graph_checks_both_ways() {
    let g = root().join("graphs/mri_liver.yaml");
    let g = g.to_str().unwrap();
    let o = voxflow(&["check", g]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (on, n4_edge) in [
        ("true", "\"n4\" -> \"norm\" [label=\"out -> corrected\"]"),
        ("false", "\"n4\" [style=dashed"),
    ] {
        let o = voxflow(&[
            "graph",
            g,
            "--set",
            &format!("n4={on}"),
            "--set",
            "input=x.nii.gz",
        ]);
        let dot = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(dot.contains(n4_edge), "n4={on}:\n{dot}");
        assert!(
            dot.contains("\"mr\" -> \"norm\"") && dot.contains("\"liver\" -> \"mask\""),
            "n4={on}:\n{dot}"
        );
    }
}

/// Real CHAOS T2 volumes with the first voxel `sitk.Shrink(image, [4] * 3)` samples per axis
/// (k, j, i), read off SimpleITK 2.5.7 (column `shrink0` of `scripts/n4_chaos_all.sh`), and
/// whether that is the centred phase of a grid-aligned image. On 22 and 31 (oblique) the phase
/// depends on the last bits of the geometry ITK reads from the header (its sform, not the
/// qform): the node must find it to match SimpleITK.
const CHAOS_SHRINK_PHASE: [(&str, [usize; 3], bool); 3] = [
    ("chaos_mr_t2_01_image.nii.gz", [2, 2, 2], true),
    ("chaos_mr_t2_22_image.nii.gz", [2, 2, 1], false),
    ("chaos_mr_t2_31_image.nii.gz", [2, 1, 2], false),
];

#[test]
fn real_chaos_volumes_node_equals_kernel_at_simpleitk_shrink_phase() {
    for (name, phase, is_centred) in CHAOS_SHRINK_PHASE {
        let Some(input) = data_file(name) else {
            return;
        };
        let d = temp_dir(&format!("n4-{name}"));
        let (corrected, field) = run_n4(
            &d,
            &input,
            &[("mask", "otsu".into()), ("shrink", "4".into())],
        );
        let v = read_any(&input, Some(StreamType::Image), None).unwrap();
        let image = v.image().unwrap();
        let mask = make_mask(image, MaskMode::Otsu);
        let p = N4Params::default();
        let direct =
            n4_with_offsets(image.view(), mask.view(), v.header.spacing, &p, phase).unwrap();
        let c = corr(&corrected, &direct.corrected, &mask);
        assert!(
            c >= 0.999_999,
            "{name}: corr(node, kernel) in the mask = {c}"
        );
        let rel = |a: &Array3<f32>, b: &Array3<f32>| {
            Zip::from(a)
                .and(b)
                .fold(0.0f32, |m, x, y| m.max((x / y - 1.0).abs()))
        };
        let max_rel = rel(&field, &direct.bias);
        assert!(
            max_rel < 1e-5,
            "{name}: bias differs from the kernel's by {max_rel} (relative)"
        );
        // the field is a real correction, not the identity
        let spread = field
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &b| (lo.min(b), hi.max(b)));
        assert!(spread.1 / spread.0 > 1.05, "{name}: bias range {spread:?}");
        // the sampling phase matters: the centred one gives another field where it differs
        let centred = n4_kernel(image.view(), mask.view(), v.header.spacing, &p).unwrap();
        let r = rel(&field, &centred.bias);
        assert_eq!(
            r < 1e-5,
            is_centred,
            "{name}: node vs centred phase differ by {r} (relative)"
        );
        if !is_centred {
            assert!(r > 1e-3, "{name}: node vs centred phase differ by only {r}");
        }
    }
}
