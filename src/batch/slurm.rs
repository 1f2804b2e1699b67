//! `voxflow batch --slurm N [--submit]`: a Slurm array job whose task I runs shard I/N.

use super::BatchArgs;
use crate::runner::status::write_atomic;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Quotes a word for sh.
fn sh(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn p(path: &Path) -> String {
    sh(&path.to_string_lossy())
}

/// The script's text: `#SBATCH` header and the `voxflow batch --shard` line.
fn script(
    a: &BatchArgs,
    n: usize,
    exe: &Path,
    (graph, manifest, out): (&Path, &Path, &Path),
    plugins: &[PathBuf],
    quiet: bool,
) -> String {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut s = format!(
        "#!/bin/bash\n\
         # Written by `voxflow batch --slurm {n}`: array task I runs the cases of shard I/{n}.\n\
         # Submitting it again runs only the cases that are not done.\n\
         #SBATCH --job-name=voxflow-{}\n\
         #SBATCH --array=0-{}\n\
         #SBATCH --output={}/slurm/%A_%a.log\n",
        name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
        n - 1,
        out.display()
    );
    for o in &a.sbatch {
        s.push_str(&format!("#SBATCH {o}\n"));
    }
    let mut cmd = vec![p(exe)];
    if quiet {
        cmd.push("-q".into());
    }
    for pl in plugins {
        cmd.push(format!("--plugin {}", p(pl)));
    }
    cmd.push(format!(
        "batch {} --manifest {} --out {}",
        p(graph),
        p(manifest),
        p(out)
    ));
    cmd.push(format!(
        "--shard \"$SLURM_ARRAY_TASK_ID/{n}\" -j {}",
        a.jobs
    ));
    if let Some(t) = a.threads {
        cmd.push(format!("--threads {t}"));
    }
    if a.retry_failed {
        cmd.push("--retry-failed".into());
    }
    cmd.push(format!("--truth-column {}", sh(&a.case.truth_column)));
    for c in &a.case.classes {
        cmd.push(format!("--class {}", sh(c)));
    }
    for d in &a.case.detect {
        cmd.push(format!("--detect {}", sh(d)));
    }
    for v in &a.case.set {
        cmd.push(format!("--set {}", sh(v)));
    }
    s.push_str("set -eu\nexec ");
    s.push_str(&cmd.join(" \\\n  "));
    s.push('\n');
    s
}

pub fn write(
    a: &BatchArgs,
    n: usize,
    graph: &Path,
    manifest: &Path,
    out: &Path,
    plugins: &[PathBuf],
    quiet: bool,
) -> Result<(), String> {
    if n == 0 {
        return Err("--slurm needs at least 1 task".into());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find voxflow itself: {e}"))?;
    let plugins = plugins
        .iter()
        .map(|p| std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display())))
        .collect::<Result<Vec<_>, _>>()?;
    let path = out.join("slurm").join("batch.sh");
    let text = script(a, n, &exe, (graph, manifest, out), &plugins, quiet);
    write_atomic(&path, text.as_bytes())?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !a.submit {
        if !quiet {
            eprintln!(
                "wrote {}: submit it with `sbatch {}`, then merge with `voxflow batch --collect {}`",
                path.display(),
                path.display(),
                out.display()
            );
        }
        return Ok(());
    }
    let o = Command::new("sbatch")
        .arg("--parsable")
        .arg(&path)
        .output()
        .map_err(|e| {
            format!("cannot run sbatch: {e} (is Slurm's client installed and on PATH?)")
        })?;
    if !o.status.success() {
        return Err(format!(
            "sbatch {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    let job = stdout.trim().split(';').next().unwrap_or_default();
    // The job id on stdout, alone, for scripts.
    println!("{job}");
    if !quiet {
        eprintln!(
            "submitted Slurm job {job} ({n} array tasks, logs in {}); when it has ended: \
             voxflow batch --collect {}",
            out.join("slurm").display(),
            out.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::sh;

    #[test]
    fn quoting() {
        assert_eq!(sh("/a/b.yaml"), "/a/b.yaml");
        assert_eq!(sh("it's here"), "'it'\\''s here'");
        assert_eq!(sh(""), "''");
    }
}
