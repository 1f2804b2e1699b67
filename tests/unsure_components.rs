//! The `drop_unsure_components` node through graph runs: islands dropped by the mean of another
//! network's probability, the channel choice, and refused inputs that leave no output.

mod common;

use common::{temp_dir, voxflow, voxflow_ok, write_graph};
use ndarray::{Array3, Array4};
use std::path::Path;
use voxflow_nodes::io::nifti_io::write_nifti;
use voxflow_nodes::io::read_volume::read_any;
use voxflow_runtime::stream::{StreamType, VolumeData};
use voxflow_runtime::{Header, Volume};

const SHAPE: [usize; 3] = [4, 8, 8];
const SPACING: [f64; 3] = [2.0, 1.0, 1.0];

/// Liver (1) everywhere, island A (lesion 2, 2x2x2 voxels) at the corner, island B (one voxel)
/// far from it.
fn label() -> Array3<u8> {
    let mut l = Array3::from_elem(SHAPE, 1u8);
    for k in 0..2 {
        for j in 0..2 {
            for i in 0..2 {
                l[[k, j, i]] = 2;
            }
        }
    }
    l[[3, 7, 7]] = 2;
    l
}

/// `channels`-channel probabilities whose channel 1 is 0.95 everywhere but 0.4 under island B
/// (the other channels: the rest of 1, split evenly).
fn prob(channels: usize) -> Array4<f32> {
    let mut p = Array4::zeros((SHAPE[0], channels, SHAPE[1], SHAPE[2]));
    for k in 0..SHAPE[0] {
        for j in 0..SHAPE[1] {
            for i in 0..SHAPE[2] {
                let q = if (k, j, i) == (3, 7, 7) { 0.4 } else { 0.95 };
                for c in 0..channels {
                    p[[k, c, j, i]] = if c == 1 {
                        q
                    } else {
                        (1.0 - q) / (channels - 1) as f32
                    };
                }
            }
        }
    }
    p
}

fn write_inputs(dir: &Path, channels: usize, shape: [usize; 3]) {
    let lh = Header::new(StreamType::Label, SHAPE, SPACING);
    write_nifti(&dir.join("label.nii"), &lh, &VolumeData::Label(label())).unwrap();
    let ph = Header::new(StreamType::Prob, shape, SPACING).with_type(StreamType::Prob, channels);
    let p = if shape == SHAPE {
        prob(channels)
    } else {
        Array4::from_elem((shape[0], channels, shape[1], shape[2]), 0.5)
    };
    write_nifti(&dir.join("prob.nii"), &ph, &VolumeData::Prob(p)).unwrap();
}

fn graph(dir: &Path, filter: &str) -> String {
    let text = format!(
        "graph: unsure\nnodes:\n  \
         lab: {{ kind: read_volume, path: label.nii, as: label }}\n  \
         p: {{ kind: read_volume, path: prob.nii, as: prob }}\n  \
         f: {{ kind: drop_unsure_components, in: lab, prob: p{filter} }}\n  \
         save: {{ kind: write_volume, in: f, path: out.nii }}\n"
    );
    write_graph(dir, "g.yaml", &text)
        .to_str()
        .unwrap()
        .to_string()
}

fn output(dir: &Path) -> Array3<u8> {
    let v: Volume = read_any(&dir.join("out.nii"), Some(StreamType::Label), None).unwrap();
    match v.data {
        VolumeData::Label(l) => l,
        _ => unreachable!(),
    }
}

#[test]
fn islands_go_by_the_mean_probability_under_them() {
    let d = temp_dir("unsure-mean");
    write_inputs(&d, 2, SHAPE);
    // B's mean is 0.4, A's 0.95: 0.5 drops B only.
    voxflow_ok(&["-q", "run", &graph(&d, ", min_mean_prob: 0.5")]);
    let out = output(&d);
    let mut expected = label();
    expected[[3, 7, 7]] = 1;
    assert_eq!(out, expected);
    // 0.96 drops both, to the label asked for.
    voxflow_ok(&[
        "-q",
        "run",
        &graph(&d, ", min_mean_prob: 0.96, replace_with: 0"),
    ]);
    let out = output(&d);
    assert_eq!(out.iter().filter(|&&x| x == 2).count(), 0);
    assert_eq!(out[[0, 0, 0]], 0);
    assert_eq!(out[[3, 7, 7]], 0);
    assert_eq!(out.iter().filter(|&&x| x == 1).count(), 4 * 8 * 8 - 9);
    // 0 keeps everything.
    voxflow_ok(&["-q", "run", &graph(&d, ", min_mean_prob: 0")]);
    assert_eq!(output(&d), label());
    // A thickness limit: B is 2 mm thick (1 mm to its neighbours in-plane, twice), so it goes
    // only under a limit above that.
    voxflow_ok(&[
        "-q",
        "run",
        &graph(&d, ", min_mean_prob: 0.5, max_thickness_mm: 2"),
    ]);
    assert_eq!(output(&d), label());
    voxflow_ok(&[
        "-q",
        "run",
        &graph(&d, ", min_mean_prob: 0.5, max_thickness_mm: 2.5"),
    ]);
    assert_eq!(output(&d), expected);
}

#[test]
fn the_channel_is_chosen_or_asked_for() {
    let d = temp_dir("unsure-channel");
    write_inputs(&d, 3, SHAPE);
    // Three channels without class names: the node cannot guess which one.
    let out = voxflow(&["-q", "run", &graph(&d, ", min_mean_prob: 0.5")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has 3 channels; set prob_class or prob_channel"),
        "{err}"
    );
    assert!(!d.join("out.nii").exists());
    // Channel 1 asked for: B goes. Channel 0 (0.025 under A, 0.3 under B): A goes.
    voxflow_ok(&[
        "-q",
        "run",
        &graph(&d, ", min_mean_prob: 0.5, prob_channel: 1"),
    ]);
    assert_eq!(output(&d).iter().filter(|&&x| x == 2).count(), 8);
    voxflow_ok(&[
        "-q",
        "run",
        &graph(&d, ", min_mean_prob: 0.2, prob_channel: 0"),
    ]);
    let out = output(&d);
    assert_eq!(out.iter().filter(|&&x| x == 2).count(), 1);
    assert_eq!(out[[3, 7, 7]], 2);
    // Both ways of naming the channel at once is refused before the run.
    let out = voxflow(&[
        "-q",
        "run",
        &graph(
            &d,
            ", min_mean_prob: 0.5, prob_channel: 1, prob_class: liver",
        ),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("set either prob_class or prob_channel"),
        "{err}"
    );
    let out = voxflow(&[
        "-q",
        "run",
        &graph(&d, ", min_mean_prob: 0.5, replace_with: 2"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 is the filtered class itself: nothing would change"),
        "{err}"
    );
}

#[test]
fn a_probability_map_of_another_shape_is_refused() {
    let d = temp_dir("unsure-shape");
    write_inputs(&d, 2, [4, 8, 9]);
    let out = voxflow(&["-q", "run", &graph(&d, ", min_mean_prob: 0.5")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "input `prob` has [4, 8, 9] voxels (slices, rows, columns) but `in` has [4, 8, 8]"
        ),
        "{err}"
    );
    assert!(!d.join("out.nii").exists());
    // Also when the filter is off and the label would only stream through.
    let out = voxflow(&["-q", "run", &graph(&d, ", min_mean_prob: 0")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("input `prob` has [4, 8, 9] voxels"));
    assert!(!d.join("out.nii").exists());
}
