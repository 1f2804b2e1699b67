//! Example voxflow plugin: keeps the largest 3D 26-connected component of a label volume.
//! Written only against `voxflow-plugin-abi`; built as `liblargest_component.so`.

use voxflow_plugin_abi::{export_plugin, Call};

const DECL: &str = r#"{
  "kind": "largest_component",
  "about": "Keep the largest 3D 26-connected component of a label (zero the rest)",
  "docs": "Foreground = every non-zero voxel, or only voxels equal to `label` when it is set. Foreground voxels are grouped into 3D components where voxels touching by a face, an edge or a corner (26-neighbourhood) belong together. Voxels of the largest component keep their values; foreground voxels of every other component become 0; other voxels are unchanged. Ties go to the component met first in (k, j, i) order. A volume without foreground passes through unchanged. Plugin `largest_component` (voxflow plugin ABI 2, whole volumes).",
  "inputs": [{ "name": "in", "type": "label", "about": "label volume" }],
  "outputs": [{ "name": "out", "type": "label", "about": "label volume, largest component only" }],
  "params": [
    { "name": "label", "type": "int", "min": 1, "max": 255, "about": "only this value forms the foreground (default: every non-zero value)" }
  ]
}"#;

export_plugin!("largest_component", [(DECL, run)]);

fn run(call: &mut Call) -> Result<(), String> {
    let input = call.input(0).ok_or("input `in` is not connected")?;
    let g = input.geometry();
    let src = input.labels().ok_or("input `in` must be a label volume")?;
    let label = call.params.int("label").map(|v| v as u8);
    let out = call.output_labels(0, &g)?;
    out.copy_from_slice(src);
    let [nk, _, nj, ni] = g.shape;
    let keep = largest_component([nk, nj, ni], |n| match label {
        Some(l) => src[n] == l,
        None => src[n] != 0,
    });
    for (n, v) in out.iter_mut().enumerate() {
        if keep[n] == OTHER {
            *v = 0;
        }
    }
    Ok(())
}

const BACKGROUND: u8 = 0;
const OTHER: u8 = 1;
const KEPT: u8 = 2;

/// Per voxel of a `(nk, nj, ni)` grid: `BACKGROUND`, `OTHER` (foreground outside the largest
/// 26-connected component) or `KEPT`.
pub fn largest_component(shape: [usize; 3], foreground: impl Fn(usize) -> bool) -> Vec<u8> {
    let n = shape.iter().product::<usize>();
    let mut state: Vec<u8> = (0..n)
        .map(|v| if foreground(v) { OTHER } else { BACKGROUND })
        .collect();
    // Pass 1: size of every component (VISITED marks voxels already counted).
    const VISITED: u8 = 3;
    let mut queue = Vec::new();
    let mut best: Option<(usize, usize)> = None; // (size, seed)
    for seed in 0..n {
        if state[seed] != OTHER {
            continue;
        }
        let size = flood(shape, &mut state, seed, OTHER, VISITED, &mut queue);
        if best.is_none_or(|(s, _)| size > s) {
            best = Some((size, seed));
        }
    }
    for v in state.iter_mut() {
        if *v == VISITED {
            *v = OTHER;
        }
    }
    // Pass 2: mark the winner.
    if let Some((_, seed)) = best {
        flood(shape, &mut state, seed, OTHER, KEPT, &mut queue);
    }
    state
}

/// Breadth-first fill of the 26-connected `from` region containing `seed` with `to`; returns
/// its size.
fn flood(
    shape: [usize; 3],
    state: &mut [u8],
    seed: usize,
    from: u8,
    to: u8,
    queue: &mut Vec<usize>,
) -> usize {
    let [nk, nj, ni] = shape;
    queue.clear();
    queue.push(seed);
    state[seed] = to;
    let mut head = 0;
    while head < queue.len() {
        let v = queue[head];
        head += 1;
        let (k, j, i) = (v / (nj * ni), (v / ni) % nj, v % ni);
        for dk in k.saturating_sub(1)..=(k + 1).min(nk - 1) {
            for dj in j.saturating_sub(1)..=(j + 1).min(nj - 1) {
                let row = (dk * nj + dj) * ni;
                for di in i.saturating_sub(1)..=(i + 1).min(ni - 1) {
                    let w = row + di;
                    if state[w] == from {
                        state[w] = to;
                        queue.push(w);
                    }
                }
            }
        }
    }
    queue.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corner_contact_joins_components() {
        // (0,0,0), (1,1,1), (2,2,2) touch only at corners: one component of 3; (4,4,0) is alone.
        let idx = |k: usize, j: usize, i: usize| (k * 5 + j) * 5 + i;
        let fg = [idx(0, 0, 0), idx(1, 1, 1), idx(2, 2, 2), idx(4, 4, 0)];
        let s = largest_component([5, 5, 5], |n| fg.contains(&n));
        assert_eq!(
            [s[fg[0]], s[fg[1]], s[fg[2]], s[fg[3]]],
            [KEPT, KEPT, KEPT, OTHER]
        );
        assert_eq!(s[idx(0, 0, 1)], BACKGROUND);
    }

    #[test]
    fn ties_keep_the_first() {
        let s = largest_component([1, 1, 5], |n| n == 0 || n == 4);
        assert_eq!((s[0], s[4]), (KEPT, OTHER));
    }
}
