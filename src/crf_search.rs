//! `voxflow crf-search`: random search over the `dense_crf` params on training volumes with
//! ground truth, maximising mean Dice (as the paper tuned its CRF).

use crate::cases::read_manifest;
use clap::Args;
use ndarray::{Array3, ArrayView3, Zip};
use std::path::{Path, PathBuf};
use std::time::Instant;
use voxflow_nodes::io::phantom::{splitmix, SPLITMIX_GAMMA};
use voxflow_nodes::io::read_volume::read_any;
use voxflow_nodes::refine::dense_crf::{argmax_prob, refine, CrfConfig, CrfParams, CrfRoi};
use voxflow_runtime::stream::StreamType;

#[derive(Args)]
pub struct CrfSearchArgs {
    /// CSV with a header line and columns `id,image,prob,truth`: the HU image, the class
    /// probabilities (4D NIfTI x,y,z,class, class 0 background), the label (0 bg, 1 liver,
    /// 2 lesion). Relative paths resolve against the manifest's folder.
    #[arg(long, value_name = "CSV")]
    manifest: PathBuf,
    /// Where to write the best params as YAML (lines of a `dense_crf` node).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Random trials after the first, which is always the defaults.
    #[arg(long, default_value_t = 30)]
    trials: usize,
    /// Seed of the random search (same seed, same trials).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mean-field iterations (not searched).
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// Where the CRF runs: liver (foreground box + margin) or full.
    #[arg(long, default_value = "liver", value_parser = ["liver", "full"])]
    roi: String,
    /// Margin around the foreground box, mm (roi liver).
    #[arg(long, default_value_t = 10.0)]
    margin_mm: f64,
    /// Clip the image to MIN,MAX first (as `hu_window` before `dense_crf` in a graph), or `none`.
    #[arg(long, default_value = "-100,400", allow_hyphen_values = true)]
    window: String,
    /// What to maximise: mean of liver and lesion Dice, or one of them (means over cases).
    #[arg(long, default_value = "mean", value_parser = ["mean", "liver", "lesion"])]
    objective: String,
    /// Also write every trial as CSV.
    #[arg(long, value_name = "FILE")]
    trials_csv: Option<PathBuf>,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// One training case in memory.
struct Case {
    id: String,
    image: Array3<f32>,
    prob: ndarray::Array4<f32>,
    truth: Array3<u8>,
    spacing: [f64; 3],
}

/// Dice of liver (>= 1) and lesion (== 2); 1 when both masks are empty, 0 when one is.
pub fn dice_pair(pred: ArrayView3<u8>, truth: ArrayView3<u8>) -> (f64, f64) {
    let mut n = [[0u64; 3]; 2]; // [class][pred, truth, both]
    Zip::from(pred).and(truth).for_each(|&p, &t| {
        for (c, (a, b)) in [(p >= 1, t >= 1), (p == 2, t == 2)].into_iter().enumerate() {
            n[c][0] += a as u64;
            n[c][1] += b as u64;
            n[c][2] += (a && b) as u64;
        }
    });
    let d = |c: [u64; 3]| {
        if c[0] + c[1] == 0 {
            1.0
        } else {
            2.0 * c[2] as f64 / (c[0] + c[1]) as f64
        }
    };
    (d(n[0]), d(n[1]))
}

/// SplitMix64: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        let z = splitmix(self.0);
        self.0 = self.0.wrapping_add(SPLITMIX_GAMMA);
        ((z >> 11) as f64) / (1u64 << 53) as f64
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f32 {
        (lo + (hi - lo) * self.next()) as f32
    }
    fn log_uniform(&mut self, lo: f64, hi: f64) -> f32 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.next()).exp() as f32
    }
}

/// The search space (`sigma_int` in HU, i.e. for an image in HU).
fn sample(rng: &mut Rng, iterations: usize) -> CrfParams {
    CrfParams {
        w_pos: rng.uniform(0.0, 10.0),
        sigma_pos_mm: rng.log_uniform(0.5, 5.0),
        w_bil: rng.uniform(0.0, 20.0),
        sigma_bil_mm: rng.log_uniform(2.0, 30.0),
        sigma_int: rng.log_uniform(5.0, 100.0),
        iterations,
    }
}

fn read_cases(manifest: &Path, window: Option<(f32, f32)>) -> Result<Vec<Case>, String> {
    let (cols, rows) = read_manifest(manifest)?;
    if let Some(c) = ["image", "prob", "truth"]
        .iter()
        .find(|c| !cols.iter().any(|x| x == *c))
    {
        return Err(format!(
            "manifest {}: no `{c}` column (crf-search needs id, image, prob, truth; has {})",
            manifest.display(),
            cols.join(", ")
        ));
    }
    let base = manifest.parent().unwrap_or(Path::new("."));
    let mut cases = Vec::new();
    for row in rows {
        let ctx = |e: String| {
            format!(
                "{}:{}: case `{}`: {e}",
                manifest.display(),
                row.line,
                row.id
            )
        };
        let cell = |name: &str| match row.values.iter().find(|(c, _)| c == name) {
            Some((_, v)) if !v.is_empty() => Ok(base.join(v)),
            _ => Err(ctx(format!("no value in column `{name}`"))),
        };
        let image = read_any(&cell("image")?, Some(StreamType::Image), None).map_err(ctx)?;
        let prob = read_any(&cell("prob")?, Some(StreamType::Prob), None).map_err(ctx)?;
        let truth = read_any(&cell("truth")?, Some(StreamType::Label), None).map_err(ctx)?;
        for (name, v) in [("prob", &prob), ("truth", &truth)] {
            if !image.header.same_geometry(&v.header) {
                return Err(ctx(format!(
                    "`{name}` ({:?} voxels) is not on the grid of `image` ({:?} voxels)",
                    v.header.shape, image.header.shape
                )));
            }
        }
        let mut img = image.image().expect("image").clone();
        if let Some((lo, hi)) = window {
            img.mapv_inplace(|v| v.clamp(lo, hi));
        }
        cases.push(Case {
            id: row.id,
            image: img,
            prob: prob.prob().expect("prob").clone(),
            truth: truth.label().expect("label").clone(),
            spacing: image.header.spacing,
        });
    }
    Ok(cases)
}

/// Mean liver and lesion Dice over the cases with `config` (`None`: the argmax, no CRF).
fn evaluate(cases: &[Case], config: Option<&CrfConfig>) -> Result<(f64, f64), String> {
    let mut per = Vec::new();
    for c in cases {
        let label = match config {
            None => argmax_prob(c.prob.view()),
            Some(cfg) => {
                refine(c.image.view(), c.prob.view(), c.spacing, cfg)
                    .map_err(|e| format!("case `{}`: {e}", c.id))?
                    .label
            }
        };
        per.push(dice_pair(label.view(), c.truth.view()));
    }
    let n = per.len() as f64;
    Ok((
        per.iter().map(|d| d.0).sum::<f64>() / n,
        per.iter().map(|d| d.1).sum::<f64>() / n,
    ))
}

fn score(objective: &str, liver: f64, lesion: f64) -> f64 {
    match objective {
        "liver" => liver,
        "lesion" => lesion,
        _ => (liver + lesion) / 2.0,
    }
}

fn parse_window(w: &str) -> Result<Option<(f32, f32)>, String> {
    if w == "none" {
        return Ok(None);
    }
    let bad = || format!("--window {w}: expected MIN,MAX (e.g. -100,400) or none");
    let (a, b) = w.split_once(',').ok_or_else(bad)?;
    let (a, b): (f32, f32) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if a >= b {
        return Err(bad());
    }
    Ok(Some((a, b)))
}

pub fn run(a: CrfSearchArgs, quiet: bool) -> Result<(), String> {
    let window = parse_window(&a.window)?;
    let roi = match a.roi.as_str() {
        "full" => CrfRoi::Full,
        _ => CrfRoi::Liver {
            margin_mm: a.margin_mm,
        },
    };
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(t) = a.threads {
        pool = pool.num_threads(t.max(1));
    }
    let pool = pool
        .build()
        .map_err(|e| format!("cannot start threads: {e}"))?;
    let cases = read_cases(&a.manifest, window)?;
    let say = |s: String| {
        if !quiet {
            eprintln!("{s}");
        }
    };
    say(format!(
        "crf-search: {} cases, {} trials, seed {}, objective {}",
        cases.len(),
        a.trials + 1,
        a.seed,
        a.objective
    ));
    let (base_l, base_s) = evaluate(&cases, None)?;
    say(format!(
        "no CRF (argmax): Dice liver {base_l:.4}, lesion {base_s:.4}"
    ));

    let mut rng = Rng(a.seed);
    let mut rows = Vec::new();
    let mut best: Option<(f64, CrfConfig, f64, f64)> = None;
    for t in 0..=a.trials {
        let params = if t == 0 {
            CrfParams {
                iterations: a.iterations,
                ..CrfParams::default()
            }
        } else {
            sample(&mut rng, a.iterations)
        };
        let config = CrfConfig { params, roi };
        let t0 = Instant::now();
        let (l, s) = pool.install(|| evaluate(&cases, Some(&config)))?;
        let sc = score(&a.objective, l, s);
        let p = &config.params;
        say(format!(
            "trial {t:>3}: w_pos {:.3} sigma_pos_mm {:.3} w_bil {:.3} sigma_bil_mm {:.3} sigma_int {:.3} -> liver {l:.4} lesion {s:.4} ({:.1} s)",
            p.w_pos,
            p.sigma_pos_mm,
            p.w_bil,
            p.sigma_bil_mm,
            p.sigma_int,
            t0.elapsed().as_secs_f64()
        ));
        rows.push(format!(
            "{t},{},{},{},{},{},{},{l:.6},{s:.6},{sc:.6}",
            p.w_pos, p.sigma_pos_mm, p.w_bil, p.sigma_bil_mm, p.sigma_int, p.iterations
        ));
        if best.as_ref().is_none_or(|b| sc > b.0) {
            best = Some((sc, config, l, s));
        }
    }
    let (_, config, l, s) = best.expect("at least one trial");
    let mut yaml = format!(
        "# voxflow crf-search: best of {} trials (seed {}, objective {}) on {} cases ({})\n\
         # mean Dice liver {l:.4}, lesion {s:.4}; without CRF (argmax) liver {base_l:.4}, lesion {base_s:.4}\n\
         # params of a dense_crf node:\n",
        a.trials + 1,
        a.seed,
        a.objective,
        cases.len(),
        cases.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(", ")
    );
    let body = config.to_yaml();
    let flow = body.lines().collect::<Vec<_>>().join(", ");
    yaml.push_str(&format!("# one line: {{ kind: dense_crf, {flow} }}\n"));
    yaml.push_str(&body);
    print!("{yaml}");
    voxflow_runtime::output::write_atomic(&a.out, yaml.as_bytes())?;
    if let Some(p) = &a.trials_csv {
        let text = format!(
            "trial,w_pos,sigma_pos_mm,w_bil,sigma_bil_mm,sigma_int,iterations,dice_liver,dice_lesion,score\n{}\n",
            rows.join("\n")
        );
        voxflow_runtime::output::write_atomic(p, text.as_bytes())?;
    }
    say(format!("wrote {}", a.out.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn dice_matches_binary_metrics() {
        let mut rng = Rng(7);
        let p = Array3::from_shape_fn((6, 7, 8), |_| (rng.next() * 3.0) as u8);
        let t = Array3::from_shape_fn((6, 7, 8), |_| (rng.next() * 3.0) as u8);
        let (l, s) = dice_pair(p.view(), t.view());
        let m = |f: fn(u8) -> bool| {
            voxflow_metrics::binary_metrics(p.mapv(f).view(), t.mapv(f).view(), [1.0; 3])
                .dice
                .unwrap()
        };
        assert!((l - m(|v| v >= 1)).abs() < 1e-12);
        assert!((s - m(|v| v == 2)).abs() < 1e-12);
        assert!(l > 0.1 && l < 0.99 && s > 0.1 && s < 0.9);
        let z = Array3::<u8>::zeros((2, 2, 2));
        assert_eq!(dice_pair(z.view(), z.view()), (1.0, 1.0));
    }

    #[test]
    fn seeded_search_repeats() {
        let (mut a, mut b) = (Rng(3), Rng(3));
        assert_eq!(sample(&mut a, 5), sample(&mut b, 5));
        assert_ne!(sample(&mut a, 5), sample(&mut Rng(4), 5));
        assert_eq!(parse_window("-100,400").unwrap(), Some((-100.0, 400.0)));
        assert!(parse_window("400,-100").is_err());
    }
}
