//! The `drop_thin_components` node through graph runs: islands dropped by their thickness in mm
//! and by their ball share in mm3 of the file's voxel spacing, and a refused param that leaves
//! no output.

mod common;

use common::{temp_dir, voxflow, voxflow_ok, write_graph};
use ndarray::Array3;
use std::path::Path;
use voxflow_nodes::io::nifti_io::write_nifti;
use voxflow_nodes::io::read_volume::read_any;
use voxflow_runtime::stream::{StreamType, VolumeData};
use voxflow_runtime::{Header, Volume};

const SHAPE: [usize; 3] = [12, 16, 16];

/// Liver (1) everywhere, a lesion plate one slice thick (slice 1, 10 x 10 voxels) and a lesion
/// block of 5 x 5 x 5 voxels apart from it.
fn label() -> Array3<u8> {
    let mut l = Array3::from_elem(SHAPE, 1u8);
    for j in 0..10 {
        for i in 0..10 {
            l[[1, j, i]] = 2;
        }
    }
    for k in 5..10 {
        for j in 8..13 {
            for i in 8..13 {
                l[[k, j, i]] = 2;
            }
        }
    }
    l
}

/// Writes the label at `spacing` and runs the filter with `filter` params; the output label.
fn run(dir: &Path, spacing: [f64; 3], filter: &str) -> Array3<u8> {
    let h = Header::new(StreamType::Label, SHAPE, spacing);
    write_nifti(&dir.join("label.nii"), &h, &VolumeData::Label(label())).unwrap();
    voxflow_ok(&["-q", "run", &graph(dir, filter)]);
    let v: Volume = read_any(&dir.join("out.nii"), Some(StreamType::Label), None).unwrap();
    match v.data {
        VolumeData::Label(l) => l,
        _ => unreachable!(),
    }
}

fn graph(dir: &Path, filter: &str) -> String {
    let text = format!(
        "graph: thin\nnodes:\n  \
         lab: {{ kind: read_volume, path: label.nii, as: label }}\n  \
         f: {{ kind: drop_thin_components, in: lab{filter} }}\n  \
         save: {{ kind: write_volume, in: f, path: out.nii }}\n"
    );
    write_graph(dir, "g.yaml", &text)
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn thin_islands_go_by_millimetres_of_the_file_spacing() {
    let d = temp_dir("thin-mm");
    let plate_gone = {
        let mut l = label();
        for j in 0..10 {
            for i in 0..10 {
                l[[1, j, i]] = 1;
            }
        }
        l
    };
    // Slices 2 mm apart: the plate is 4 mm thick, the block 6 mm (3 voxels of 1 mm to its edge
    // in-plane, twice). 5 mm drops the plate only; 7 mm both.
    assert_eq!(
        run(&d, [2.0, 1.0, 1.0], ", min_thickness_mm: 5"),
        plate_gone
    );
    let both = run(&d, [2.0, 1.0, 1.0], ", min_thickness_mm: 7");
    assert_eq!(both.iter().filter(|&&x| x == 2).count(), 0);
    assert_eq!(
        both.iter().filter(|&&x| x == 1).count(),
        SHAPE.iter().product::<usize>()
    );
    // Slices 5 mm apart: the plate is 10 mm thick and stays at 7 mm.
    assert_eq!(run(&d, [5.0, 1.0, 1.0], ", min_thickness_mm: 7"), {
        let mut l = label();
        for k in 5..10 {
            for j in 8..13 {
                for i in 8..13 {
                    l[[k, j, i]] = 1;
                }
            }
        }
        l
    });
    // 0 keeps everything.
    assert_eq!(run(&d, [2.0, 1.0, 1.0], ", min_thickness_mm: 0"), label());
}

#[test]
fn flat_islands_go_by_their_ball_share_in_mm3() {
    let d = temp_dir("thin-share");
    // Slices 2 mm apart: the plate is 4 mm thick and 200 mm3 (ball share 0.17), the block 6 mm
    // thick and 250 mm3 (0.45): 0.3 drops the plate only.
    let plate_gone = run(&d, [2.0, 1.0, 1.0], ", min_ball_share: 0.3");
    assert_eq!(plate_gone.iter().filter(|&&x| x == 2).count(), 125);
    assert_eq!(plate_gone[[1, 0, 0]], 1);
    // Slices 5 mm apart: the plate is 10 mm thick and 500 mm3 (share 1), the block still 6 mm
    // thick but 625 mm3 (0.18): now the block goes.
    let block_gone = run(&d, [5.0, 1.0, 1.0], ", min_ball_share: 0.3");
    assert_eq!(block_gone.iter().filter(|&&x| x == 2).count(), 100);
    assert_eq!(block_gone[[7, 10, 10]], 1);
}

#[test]
fn relabelling_to_the_filtered_class_is_refused() {
    let d = temp_dir("thin-same");
    let h = Header::new(StreamType::Label, SHAPE, [1.0; 3]);
    write_nifti(&d.join("label.nii"), &h, &VolumeData::Label(label())).unwrap();
    let out = voxflow(&[
        "-q",
        "run",
        &graph(&d, ", min_thickness_mm: 5, replace_with: 2"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 is the filtered class itself: nothing would change"),
        "{err}"
    );
    assert!(!d.join("out.nii").exists());
}
