//! `voxflow batch --slurm --submit` on a real one-node Slurm cluster: tests/slurm/run.sh
//! installs and starts it (root and apt-get needed; it says so otherwise).

mod common;

use common::{data_file, root};
use std::process::Command;

#[test]
fn array_job_runs_every_case_once_and_resumes_after_scancel() {
    let Some(ct) = data_file("ircadb01_small_ct.nii.gz") else {
        return;
    };
    let o = Command::new("bash")
        .arg(root().join("tests/slurm/run.sh"))
        .env("VOXFLOW", env!("CARGO_BIN_EXE_voxflow"))
        .env("VOXFLOW_DATA", ct.parent().unwrap())
        .output()
        .expect("run tests/slurm/run.sh");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && out.contains("slurm: ok"),
        "tests/slurm/run.sh failed:\n{out}\n{err}"
    );
}
