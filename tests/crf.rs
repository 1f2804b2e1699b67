//! `dense_crf` node and `voxflow crf-search` (issue 5).

mod common;

use common::{data_file, temp_dir, voxflow, voxflow_ok, write_graph};
use ndarray::{s, Array3, Array4};
use std::path::Path;
use voxflow_nodes::io::nifti_io::write_nifti;
use voxflow_nodes::io::phantom::{splitmix, SPLITMIX_GAMMA};
use voxflow_nodes::io::read_volume::read_any;
use voxflow_runtime::stream::{Header, StreamType, Volume, VolumeData};

/// SplitMix64 with Box-Muller normals.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        let z = splitmix(self.0);
        self.0 = self.0.wrapping_add(SPLITMIX_GAMMA);
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f32 {
        ((-2.0 * self.next().ln()).sqrt() * (2.0 * std::f64::consts::PI * self.next()).cos()) as f32
    }
}

fn read(p: &Path, ty: StreamType) -> Volume {
    read_any(p, Some(ty), None).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn write(p: &Path, h: &Header, d: VolumeData) {
    write_nifti(p, h, &d).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
}

/// Noisy 3-class probabilities `(nk, 3, nj, ni)` from a label: one-hot, box-blurred (3 voxels
/// per axis), `logit = gain * onehot + noise * N(0, 1)`, softmax.
fn noisy_prob(label: &Array3<u8>, gain: f32, noise: f32, seed: u64) -> Array4<f32> {
    let (nk, nj, ni) = label.dim();
    let mut oh = Array4::<f32>::zeros((3, nk, nj, ni));
    for ((k, j, i), &l) in label.indexed_iter() {
        oh[[l.min(2) as usize, k, j, i]] = 1.0;
    }
    for ax in 1..4 {
        let src = oh.clone();
        let n = src.shape()[ax];
        for (idx, v) in oh.indexed_iter_mut() {
            let mut sum = 0.0;
            let mut cnt = 0.0;
            for d in [-1i64, 0, 1] {
                let mut q = [idx.0, idx.1, idx.2, idx.3];
                let x = q[ax] as i64 + d;
                if x >= 0 && (x as usize) < n {
                    q[ax] = x as usize;
                    sum += src[q];
                    cnt += 1.0;
                }
            }
            *v = sum / cnt;
        }
    }
    let mut rng = Rng(seed);
    let mut p = Array4::<f32>::zeros((nk, 3, nj, ni));
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let z: Vec<f32> = (0..3)
                    .map(|c| gain * oh[[c, k, j, i]] + noise * rng.normal())
                    .collect();
                let m = z.iter().cloned().fold(f32::MIN, f32::max);
                let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
                let s: f32 = e.iter().sum();
                for c in 0..3 {
                    p[[k, c, j, i]] = e[c] / s;
                }
            }
        }
    }
    p
}

/// A phantom: body (label 0 but bright), liver ball (1) with a lesion ball (2) inside, and an
/// image with distinct intensities + noise. Spacing anisotropic.
fn phantom(
    shape: (usize, usize, usize),
    spacing: [f64; 3],
    seed: u64,
) -> (Array3<f32>, Array3<u8>) {
    let (nk, nj, ni) = shape;
    let c = [
        nk as f64 / 2.0 * spacing[0],
        nj as f64 / 2.0 * spacing[1],
        ni as f64 / 2.0 * spacing[2],
    ];
    let r_liver = 0.4 * (nj as f64 * spacing[1]).min(nk as f64 * spacing[0]);
    let mut rng = Rng(seed);
    let mut label = Array3::zeros(shape);
    let mut img = Array3::zeros(shape);
    for ((k, j, i), l) in label.indexed_iter_mut() {
        let x = [
            k as f64 * spacing[0] - c[0],
            j as f64 * spacing[1] - c[1],
            i as f64 * spacing[2] - c[2],
        ];
        let d = (x[0].powi(2) + x[1].powi(2) + x[2].powi(2)).sqrt();
        let dl = ((x[0]).powi(2) + x[1].powi(2) + (x[2] - 0.35 * r_liver).powi(2)).sqrt();
        *l = if dl < 0.45 * r_liver {
            2
        } else if d < r_liver {
            1
        } else {
            0
        };
    }
    for (v, l) in img.iter_mut().zip(label.iter()) {
        *v = [0.0, 110.0, 60.0][*l as usize] + 15.0 * rng.normal();
    }
    (img, label)
}

fn header(
    ty: StreamType,
    shape: (usize, usize, usize),
    spacing: [f64; 3],
    channels: usize,
) -> Header {
    let mut h = Header::new(ty, [shape.0, shape.1, shape.2], spacing);
    h.channels = channels;
    h
}

fn dice(a: &Array3<u8>, b: &Array3<u8>, f: fn(u8) -> bool) -> f64 {
    let (mut na, mut nb, mut both) = (0u64, 0u64, 0u64);
    for (&x, &y) in a.iter().zip(b.iter()) {
        na += f(x) as u64;
        nb += f(y) as u64;
        both += (f(x) && f(y)) as u64;
    }
    2.0 * both as f64 / (na + nb).max(1) as f64
}

fn argmax(p: &Array4<f32>) -> Array3<u8> {
    let (nk, c, nj, ni) = p.dim();
    Array3::from_shape_fn((nk, nj, ni), |(k, j, i)| {
        (1..c).fold(0usize, |b, x| {
            if p[[k, x, j, i]] > p[[k, b, j, i]] {
                x
            } else {
                b
            }
        }) as u8
    })
}

/// Writes a phantom case (image, noisy prob, truth) into `dir` with file prefix `name`.
fn phantom_case(dir: &Path, name: &str, seed: u64) -> (Array3<f32>, Array4<f32>, Array3<u8>) {
    let shape = (20, 36, 40);
    let sp = [2.0, 0.8, 0.8];
    let (img, truth) = phantom(shape, sp, seed);
    let prob = noisy_prob(&truth, 2.0, 1.2, seed + 100);
    write(
        &dir.join(format!("{name}_img.nii")),
        &header(StreamType::Image, shape, sp, 1),
        VolumeData::Image(img.clone()),
    );
    write(
        &dir.join(format!("{name}_prob.nii")),
        &header(StreamType::Prob, shape, sp, 3),
        VolumeData::Prob(prob.clone()),
    );
    write(
        &dir.join(format!("{name}_truth.nii")),
        &header(StreamType::Label, shape, sp, 1),
        VolumeData::Label(truth.clone()),
    );
    (img, prob, truth)
}

fn crf_graph(dir: &Path, name: &str, extra: &str) -> std::path::PathBuf {
    write_graph(
        dir,
        "crf.yaml",
        &format!(
            "graph: crf\nnodes:\n  img: {{ kind: read_volume, path: {name}_img.nii }}\n  \
             pr: {{ kind: read_volume, path: {name}_prob.nii }}\n  \
             crf: {{ kind: dense_crf, image: img, prob: pr{extra} }}\n  \
             wl: {{ kind: write_volume, in: crf, path: out_label.nii }}\n  \
             wp: {{ kind: write_volume, in: crf.prob, path: out_prob.nii }}\n"
        ),
    )
}

#[test]
fn no_iterations_stream_the_argmax_and_pass_prob_unchanged() {
    let dir = temp_dir("crf-zero");
    let (_, prob, _) = phantom_case(&dir, "z", 3);
    let g = crf_graph(&dir, "z", ", iterations: 0");
    voxflow_ok(&["run", "-q", g.to_str().unwrap()]);
    let label = read(&dir.join("out_label.nii"), StreamType::Label);
    let q = read(&dir.join("out_prob.nii"), StreamType::Prob);
    assert_eq!(label.label().unwrap(), &argmax(&prob));
    assert_eq!(q.prob().unwrap(), &prob);
}

#[test]
fn graph_run_agrees_with_the_kernel() {
    let dir = temp_dir("crf-kernel");
    let (img, prob, truth) = phantom_case(&dir, "a", 1);
    let g = crf_graph(&dir, "a", ", roi: full, iterations: 5");
    voxflow_ok(&["run", "-q", "--threads", "2", g.to_str().unwrap()]);
    let label = read(&dir.join("out_label.nii"), StreamType::Label);
    let q = read(&dir.join("out_prob.nii"), StreamType::Prob);

    let params = voxflow_crf::CrfParams {
        iterations: 5,
        ..Default::default()
    };
    let p_last = prob
        .view()
        .permuted_axes([0, 2, 3, 1])
        .as_standard_layout()
        .into_owned();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let direct = pool
        .install(|| voxflow_crf::dense_crf(img.view(), p_last.view(), [2.0, 0.8, 0.8], &params));
    let direct_label = voxflow_crf::argmax_labels(direct.view());
    assert_eq!(
        label.label().unwrap(),
        &direct_label,
        "labels differ from the kernel's"
    );
    let qd = direct.view().permuted_axes([0, 3, 1, 2]);
    let maxdiff = q
        .prob()
        .unwrap()
        .iter()
        .zip(qd.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        maxdiff < 1e-6,
        "refined prob differs from the kernel's by {maxdiff}"
    );
    // not trivial: the CRF changed labels and improved on the noisy argmax
    let am = argmax(&prob);
    let changed = am
        .iter()
        .zip(direct_label.iter())
        .filter(|(a, b)| a != b)
        .count();
    let (d0, d1) = (
        dice(&am, &truth, |v| v >= 1),
        dice(&direct_label, &truth, |v| v >= 1),
    );
    eprintln!("phantom: {changed} labels changed, liver Dice {d0:.4} -> {d1:.4}");
    assert!(
        changed > 500 && d1 > d0 + 0.02,
        "changed {changed}, Dice {d0} -> {d1}"
    );
}

#[test]
fn roi_liver_leaves_the_outside_unchanged() {
    let dir = temp_dir("crf-roi");
    let (_, _, truth) = phantom_case(&dir, "a", 2);
    // clean background far from the liver so the box is well inside the volume
    let shape = truth.dim();
    let sp = [2.0, 0.8, 0.8];
    let mut prob = noisy_prob(&truth, 2.0, 1.6, 7);
    let (nk, _, nj, ni) = prob.dim();
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let inner = (4..nk - 4).contains(&k)
                    && (8..nj - 8).contains(&j)
                    && (8..ni - 8).contains(&i);
                if !inner {
                    // background wins but stays uncertain, so the CRF would change it
                    prob[[k, 0, j, i]] = 0.4;
                    prob[[k, 1, j, i]] = 0.35;
                    prob[[k, 2, j, i]] = 0.25;
                }
            }
        }
    }
    write(
        &dir.join("a_prob.nii"),
        &header(StreamType::Prob, shape, sp, 3),
        VolumeData::Prob(prob.clone()),
    );
    let g = crf_graph(&dir, "a", ", margin_mm: 2");
    voxflow_ok(&["run", "-q", g.to_str().unwrap()]);
    let label = read(&dir.join("out_label.nii"), StreamType::Label);
    let q = read(&dir.join("out_prob.nii"), StreamType::Prob);
    let (label, q) = (label.label().unwrap(), q.prob().unwrap());
    let am = argmax(&prob);
    // box of the foreground argmax + 2 mm (1 voxel along k, 3 along j and i)
    let mut lo = [usize::MAX; 3];
    let mut hi = [0; 3];
    for ((k, j, i), &l) in am.indexed_iter() {
        if l != 0 {
            for (a, v) in [k, j, i].into_iter().enumerate() {
                lo[a] = lo[a].min(v);
                hi[a] = hi[a].max(v + 1);
            }
        }
    }
    let m = [1, 3, 3];
    let b: Vec<_> = (0..3)
        .map(|a| lo[a].saturating_sub(m[a])..(hi[a] + m[a]).min([nk, nj, ni][a]))
        .collect();
    assert!(
        b[1].start > 0 && b[2].end < ni,
        "box {b:?} should not cover the volume"
    );
    let (mut outside, mut inside_changed) = (0, 0);
    for ((k, j, i), &l) in label.indexed_iter() {
        let inb = b[0].contains(&k) && b[1].contains(&j) && b[2].contains(&i);
        if inb {
            inside_changed += (l != am[[k, j, i]]) as usize;
        } else {
            outside += 1;
            assert_eq!(
                l,
                am[[k, j, i]],
                "label changed outside the box at {:?}",
                (k, j, i)
            );
            for c in 0..3 {
                assert_eq!(
                    q[[k, c, j, i]],
                    prob[[k, c, j, i]],
                    "prob changed outside the box at {:?}",
                    (k, j, i)
                );
            }
        }
    }
    eprintln!(
        "box {b:?}: {outside} voxels outside unchanged, {inside_changed} labels changed inside"
    );
    assert!(outside > 5000 && inside_changed > 100);
    // with roi: full the outside does change (so the check above can fail)
    let g = crf_graph(&dir, "a", ", roi: full");
    voxflow_ok(&["run", "-q", g.to_str().unwrap()]);
    let qf = read(&dir.join("out_prob.nii"), StreamType::Prob);
    assert_ne!(
        qf.prob().unwrap().slice(s![0, .., .., ..]),
        prob.slice(s![0, .., .., ..])
    );
}

#[test]
fn clear_errors() {
    let dir = temp_dir("crf-errors");
    phantom_case(&dir, "a", 3);
    // another grid
    let h = header(StreamType::Image, (20, 36, 41), [2.0, 0.8, 0.8], 1);
    write(
        &dir.join("b_img.nii"),
        &h,
        VolumeData::Image(Array3::zeros((20, 36, 41))),
    );
    std::fs::copy(dir.join("a_prob.nii"), dir.join("b_prob.nii")).unwrap();
    let g = crf_graph(&dir, "b", "");
    let o = voxflow(&["run", "-q", g.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("crf") && err.contains("same grid"),
        "{err}"
    );
    assert!(!dir.join("out_label.nii").exists() && !dir.join("out_prob.nii").exists());
    // 17 classes
    let h = header(StreamType::Prob, (20, 36, 40), [2.0, 0.8, 0.8], 17);
    write(
        &dir.join("c_prob.nii"),
        &h,
        VolumeData::Prob(Array4::from_elem((20, 17, 36, 40), 1.0 / 17.0)),
    );
    std::fs::copy(dir.join("a_img.nii"), dir.join("c_img.nii")).unwrap();
    let g = crf_graph(&dir, "c", "");
    let o = voxflow(&["run", "-q", g.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("17 classes"), "{err}");
    // bad param, found by check
    let g = crf_graph(&dir, "a", ", sigma_int: 0");
    let o = voxflow(&["check", g.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("sigma_int"), "{err}");
}

#[test]
fn crf_search_on_phantoms() {
    let dir = temp_dir("crf-search");
    phantom_case(&dir, "a", 11);
    phantom_case(&dir, "b", 12);
    std::fs::write(dir.join("cases.csv"), "id,image,prob,truth\na,a_img.nii,a_prob.nii,a_truth.nii\nb,b_img.nii,b_prob.nii,b_truth.nii\n").unwrap();
    let run = |out: &str| {
        let o = voxflow_ok(&[
            "crf-search",
            "--manifest",
            dir.join("cases.csv").to_str().unwrap(),
            "--out",
            dir.join(out).to_str().unwrap(),
            "--trials",
            "3",
            "--iterations",
            "5",
            "--seed",
            "5",
            "--trials-csv",
            dir.join(format!("{out}.csv")).to_str().unwrap(),
        ]);
        String::from_utf8(o.stdout).unwrap()
    };
    let yaml = run("best.yaml");
    assert_eq!(
        std::fs::read_to_string(dir.join("best.yaml")).unwrap(),
        yaml
    );
    assert_eq!(run("again.yaml"), yaml, "same seed, same result");
    // the best is at least as good as the defaults (trial 0) and better than no CRF
    let csv = std::fs::read_to_string(dir.join("best.yaml.csv")).unwrap();
    let scores: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(scores.len(), 4);
    let best = scores.iter().cloned().fold(f64::MIN, f64::max);
    let line = yaml
        .lines()
        .find(|l| l.contains("mean Dice liver"))
        .unwrap();
    let nums: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|t| t.parse().ok())
        .collect();
    eprintln!("{yaml}");
    let (l, s, l0, s0) = (nums[0], nums[1], nums[2], nums[3]);
    assert!(((l + s) / 2.0 - best).abs() < 1e-3 && best >= scores[0]);
    assert!(
        l > l0 + 0.05 && s > s0 + 0.05,
        "CRF {l}/{s} vs argmax {l0}/{s0}"
    );
    // the YAML pastes into a graph
    let params: String = yaml
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!(", {}", l.trim()))
        .collect();
    let g = crf_graph(&dir, "a", &params);
    voxflow_ok(&["check", g.to_str().unwrap()]);
}

#[test]
fn crf_improves_noisy_probabilities_on_ircadb() {
    let (Some(ct), Some(lab)) = (
        data_file("ircadb01_small_ct.nii.gz"),
        data_file("ircadb01_small_label.nii.gz"),
    ) else {
        return;
    };
    let dir = temp_dir("crf-ircadb");
    let truth = read(&lab, StreamType::Label);
    let t = truth.label().unwrap();
    let prob = noisy_prob(t, 2.0, 1.6, 17);
    let mut h = truth.header.with_type(StreamType::Prob, 3);
    h.meta.clear();
    write(&dir.join("prob.nii"), &h, VolumeData::Prob(prob.clone()));
    let g = write_graph(
        &dir,
        "g.yaml",
        &format!(
            "graph: crf-ircadb\nnodes:\n  ct: {{ kind: read_volume, path: \"{}\" }}\n  \
             w: {{ kind: hu_window, in: ct, min: -100, max: 400 }}\n  \
             pr: {{ kind: read_volume, path: prob.nii }}\n  \
             crf: {{ kind: dense_crf, image: w, prob: pr }}\n  \
             save: {{ kind: write_volume, in: crf, path: out.nii.gz }}\n",
            ct.display()
        ),
    );
    voxflow_ok(&["run", "-q", g.to_str().unwrap()]);
    let out = read(&dir.join("out.nii.gz"), StreamType::Label);
    let out = out.label().unwrap();
    let am = argmax(&prob);
    let d = |x: &Array3<u8>, f: fn(u8) -> bool| dice(x, t, f);
    let (l0, s0, l1, s1) = (
        d(&am, |v| v >= 1),
        d(&am, |v| v == 2),
        d(out, |v| v >= 1),
        d(out, |v| v == 2),
    );
    eprintln!("ircadb01_small, noisy label probabilities: Dice liver {l0:.4} -> {l1:.4}, lesion {s0:.4} -> {s1:.4}");
    assert!(
        l1 > l0 + 0.01 && s1 > s0 + 0.01,
        "liver {l0} -> {l1}, lesion {s0} -> {s1}"
    );
}
