//! Hand-computed cases of the connected components (moved here with the code from voxflow-metrics).

use ndarray::{s, Array3};
use voxflow_volume::{label_components, largest_component, Connectivity};

#[test]
fn components_touching_the_border_and_largest() {
    let mut m = Array3::from_elem((6, 6, 6), false);
    m.slice_mut(s![0..2, 0..2, 0..2]).fill(true); // 8 voxels at the corner
    m.slice_mut(s![3..6, 3..6, 3..6]).fill(true); // 27 voxels at the far corner
    let (l, n) = label_components(m.view(), Connectivity::Six);
    assert_eq!((n, l[[0, 0, 0]], l[[5, 5, 5]]), (2, 1, 2));
    let big = largest_component(m.view());
    assert_eq!(big.iter().filter(|&&b| b).count(), 27);
    assert!(big[[5, 5, 5]] && !big[[0, 0, 0]]);
}

#[test]
fn components_on_strided_view_and_long_runs() {
    // Rows longer than the 32-voxel skip blocks, runs crossing block boundaries, and a
    // transposed (non-contiguous) view must label the same as its standard-layout copy.
    let mut m = Array3::from_elem((3, 4, 100), false);
    m.slice_mut(s![0, 0, 5..70]).fill(true); // run crossing two block boundaries
    m.slice_mut(s![1, 1, 64..96]).fill(true); // one aligned block, diagonal neighbour of the run above
    m.slice_mut(s![2, 2, 95..97]).fill(true); // two voxels across a boundary, diagonal to [1, 1, 95]
    m[[0, 3, 99]] = true; // last voxel of a row
    let (l, n) = label_components(m.view(), Connectivity::TwentySix);
    assert_eq!(n, 2);
    assert_eq!(
        (l[[0, 0, 5]], l[[1, 1, 64]], l[[2, 2, 96]], l[[0, 3, 99]]),
        (1, 1, 1, 2)
    );
    assert_eq!(l[[0, 0, 69]], 1);
    assert_eq!(l[[0, 0, 70]], 0);
    let (l6, n6) = label_components(m.view(), Connectivity::Six);
    assert_eq!(n6, 4);
    assert_eq!(
        (
            l6[[0, 0, 5]],
            l6[[0, 3, 99]],
            l6[[1, 1, 64]],
            l6[[2, 2, 96]]
        ),
        (1, 2, 3, 4)
    );
    let t = m.view().reversed_axes();
    let (a, na) = label_components(t, Connectivity::Six);
    let (b, nb) = label_components(t.to_owned().view(), Connectivity::Six);
    assert_eq!((na, a), (nb, b));
}
