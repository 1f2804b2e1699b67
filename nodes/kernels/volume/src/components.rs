//! 3-D connected-component labelling (union-find over row runs).
//!
//! Labels are `1..=n`, background is 0, and components are numbered in raster order
//! (C order over `(k, j, i)`) of their first voxel, which is also what
//! `scipy.ndimage.label` produces.

use ndarray::{Array3, ArrayView3};
use rayon::prelude::*;

/// Neighbourhood used to decide whether two foreground voxels are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// Face neighbours only (6 per voxel).
    Six,
    /// Face, edge and corner neighbours (26 per voxel).
    TwentySix,
}

/// Foreground runs of every row of a volume, with their component labels.
///
/// Rows are indexed `r = k * nj + j`; the runs of row `r` are
/// `runs[row_start[r]..row_start[r + 1]]`, each `(start, end)` (end exclusive) along axis 2.
pub struct Runs {
    /// Index into `runs` of each row's first run, plus one past the last.
    pub row_start: Vec<usize>,
    /// `(start, end)` of each run along axis 2, end exclusive.
    pub runs: Vec<(u32, u32)>,
    /// Final component label (1-based) of each run.
    pub label: Vec<u32>,
    /// Number of components.
    pub n: usize,
}

fn row_runs(row: ndarray::ArrayView1<bool>, out: &mut Vec<(u32, u32)>) {
    match row.as_slice() {
        Some(sl) => slice_runs(sl, out),
        None => slice_runs(&row.to_vec(), out),
    }
}

/// Appends the `(start, end)` runs of `true` in `sl`. Blocks of 32 that are all `false`
/// outside a run (or all `true` inside one) are skipped with a branch-free test.
fn slice_runs(sl: &[bool], out: &mut Vec<(u32, u32)>) {
    const B: usize = 32;
    let n = sl.len();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < n {
        let end = (i + B).min(n);
        let blk = &sl[i..end];
        let uniform = match start {
            None => !blk.iter().fold(false, |a, &b| a | b),
            Some(_) => blk.iter().fold(true, |a, &b| a & b),
        };
        if !uniform {
            for (x, &b) in blk.iter().enumerate() {
                match (b, start) {
                    (true, None) => start = Some(i + x),
                    (false, Some(s0)) => {
                        out.push((s0 as u32, (i + x) as u32));
                        start = None;
                    }
                    _ => {}
                }
            }
        }
        i = end;
    }
    if let Some(s0) = start {
        out.push((s0 as u32, n as u32));
    }
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let p = parent[x as usize];
        parent[x as usize] = parent[p as usize];
        x = p;
    }
    x
}

fn union(parent: &mut [u32], a: u32, b: u32) {
    let ra = find(parent, a);
    let rb = find(parent, b);
    if ra != rb {
        let (r, o) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[o as usize] = r;
    }
}

impl Runs {
    /// Run-length encodes `mask` and labels its components (union-find over runs).
    pub fn new(mask: ArrayView3<bool>, connectivity: Connectivity) -> Runs {
        let (nk, nj, _) = mask.dim();
        // Run-length encode the k-slices in parallel, then concatenate.
        let slices: Vec<_> = mask.outer_iter().collect();
        // Per slice: the run count after each row, and the runs.
        type SliceRuns = (Vec<usize>, Vec<(u32, u32)>);
        let per_slice: Vec<SliceRuns> = slices
            .into_par_iter()
            .map(|slice| {
                let mut ends = Vec::with_capacity(nj);
                let mut runs = Vec::new();
                for row in slice.outer_iter() {
                    row_runs(row, &mut runs);
                    ends.push(runs.len());
                }
                (ends, runs)
            })
            .collect();
        let mut row_start = Vec::with_capacity(nk * nj + 1);
        let mut runs = Vec::with_capacity(per_slice.iter().map(|p| p.1.len()).sum());
        row_start.push(0);
        for (ends, r) in per_slice {
            let base = runs.len();
            row_start.extend(ends.iter().map(|e| base + e));
            runs.extend_from_slice(&r);
        }

        // Previous rows that can touch row (k, j), as (dk, dj), and how far runs may be
        // apart along axis 2 and still touch (0: faces only, 1: also edges/corners).
        let (prev, ext): (&[(usize, isize)], u32) = match connectivity {
            Connectivity::Six => (&[(0, -1), (1, 0)], 0),
            Connectivity::TwentySix => (&[(0, -1), (1, -1), (1, 0), (1, 1)], 1),
        };
        let mut parent: Vec<u32> = (0..runs.len() as u32).collect();
        for k in 0..nk {
            for j in 0..nj {
                let r = k * nj + j;
                let (c0, c1) = (row_start[r], row_start[r + 1]);
                if c0 == c1 {
                    continue;
                }
                for &(dk, dj) in prev {
                    let jj = j as isize + dj;
                    if k < dk || jj < 0 || jj >= nj as isize {
                        continue;
                    }
                    let nr = (k - dk) * nj + jj as usize;
                    let (mut p, n1) = (row_start[nr], row_start[nr + 1]);
                    for c in c0..c1 {
                        let (s0, e0) = runs[c];
                        // Skip neighbour runs that end before this run starts.
                        while p < n1 && runs[p].1 + ext <= s0 {
                            p += 1;
                        }
                        let mut q = p;
                        while q < n1 && runs[q].0 < e0 + ext {
                            union(&mut parent, c as u32, q as u32);
                            q += 1;
                        }
                    }
                }
            }
        }
        // Runs are in raster order, so the first run met of a component holds its first voxel.
        let mut root_label = vec![0u32; runs.len()];
        let mut label = vec![0u32; runs.len()];
        let mut n = 0u32;
        for (r, l) in label.iter_mut().enumerate() {
            let root = find(&mut parent, r as u32) as usize;
            if root_label[root] == 0 {
                n += 1;
                root_label[root] = n;
            }
            *l = root_label[root];
        }
        Runs {
            row_start,
            runs,
            label,
            n: n as usize,
        }
    }

    /// Voxel count of each label (`sizes[l - 1]`).
    pub fn sizes(&self) -> Vec<u64> {
        let mut sizes = vec![0u64; self.n];
        for (&(s0, e0), &l) in self.runs.iter().zip(&self.label) {
            sizes[l as usize - 1] += (e0 - s0) as u64;
        }
        sizes
    }

    /// Calls `f(row, start, end, label)` for every run.
    pub fn for_each(&self, mut f: impl FnMut(usize, usize, usize, u32)) {
        for r in 0..self.row_start.len() - 1 {
            for c in self.row_start[r]..self.row_start[r + 1] {
                let (s0, e0) = self.runs[c];
                f(r, s0 as usize, e0 as usize, self.label[c]);
            }
        }
    }
}

/// Labels the connected components of `mask`.
///
/// Returns the label volume (same shape, `u32`, 0 = background, components `1..=n`
/// numbered in raster order of their first voxel) and the number of components `n`.
/// Union-find runs on the foreground runs of each row, so cost scales with the number of
/// runs rather than voxels.
pub fn label_components(
    mask: ArrayView3<bool>,
    connectivity: Connectivity,
) -> (Array3<u32>, usize) {
    let runs = Runs::new(mask, connectivity);
    let mut out = Array3::<u32>::zeros(mask.dim());
    let ni = mask.dim().2;
    let flat = out.as_slice_mut().expect("standard layout");
    runs.for_each(|r, s0, e0, l| flat[r * ni + s0..r * ni + e0].fill(l));
    (out, runs.n)
}

/// Voxel count of each component: `sizes[l - 1]` is the size of label `l`.
pub fn component_sizes(labels: ArrayView3<u32>, n: usize) -> Vec<u64> {
    let mut sizes = vec![0u64; n + 1];
    for &l in labels.iter() {
        sizes[l as usize] += 1;
    }
    sizes.remove(0);
    sizes
}

/// Keeps only the largest 26-connected component of `mask` (ties: the one that comes
/// first in raster order). An empty mask gives an empty mask.
pub fn largest_component(mask: ArrayView3<bool>) -> Array3<bool> {
    largest_component_with(mask, Connectivity::TwentySix)
}

/// [`largest_component`] with an explicit connectivity.
pub fn largest_component_with(mask: ArrayView3<bool>, connectivity: Connectivity) -> Array3<bool> {
    let runs = Runs::new(mask, connectivity);
    let mut out = Array3::from_elem(mask.dim(), false);
    if runs.n == 0 {
        return out;
    }
    let sizes = runs.sizes();
    let mut best = 0;
    for (l, &sz) in sizes.iter().enumerate() {
        if sz > sizes[best] {
            best = l;
        }
    }
    let keep = best as u32 + 1;
    let ni = mask.dim().2;
    let flat = out.as_slice_mut().expect("standard layout");
    runs.for_each(|r, s0, e0, l| {
        if l == keep {
            flat[r * ni + s0..r * ni + e0].fill(true);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_vs_twentysix_diagonal() {
        let mut m = Array3::from_elem((3, 3, 3), false);
        m[[0, 0, 0]] = true;
        m[[1, 1, 1]] = true; // corner neighbour only
        m[[2, 2, 2]] = true;
        m[[2, 2, 1]] = true; // face neighbour of [2,2,2]
        let (l6, n6) = label_components(m.view(), Connectivity::Six);
        assert_eq!(n6, 3);
        assert_eq!(
            (l6[[0, 0, 0]], l6[[1, 1, 1]], l6[[2, 2, 1]], l6[[2, 2, 2]]),
            (1, 2, 3, 3)
        );
        let (l26, n26) = label_components(m.view(), Connectivity::TwentySix);
        assert_eq!(n26, 1);
        assert!(m.iter().zip(l26.iter()).all(|(&b, &l)| (l == 1) == b));
    }

    #[test]
    fn u_shape_merges_and_numbering_follows_first_voxel() {
        // A "U" in one slice: two arms that only join in the last row, so provisional
        // labels must be merged. A separate voxel earlier in raster order gets label 1.
        let mut m = Array3::from_elem((2, 5, 7), false);
        m[[0, 0, 6]] = true;
        for j in 1..5 {
            m[[1, j, 1]] = true;
            m[[1, j, 4]] = true;
        }
        for i in 1..5 {
            m[[1, 4, i]] = true;
        }
        let (l, n) = label_components(m.view(), Connectivity::Six);
        assert_eq!(n, 2);
        assert_eq!(l[[0, 0, 6]], 1);
        assert_eq!(l[[1, 1, 1]], 2);
        assert_eq!(l[[1, 1, 4]], 2);
        assert_eq!(component_sizes(l.view(), n), vec![1, 10]);
        let big = largest_component(m.view());
        assert!(!big[[0, 0, 6]] && big[[1, 1, 4]]);
        assert_eq!(big.iter().filter(|&&b| b).count(), 10);
    }

    /// Reference labelling by breadth-first flood fill started in raster order.
    fn flood_fill(m: &Array3<bool>, conn: Connectivity) -> (Array3<u32>, usize) {
        let (nk, nj, ni) = m.dim();
        let mut lab = Array3::<u32>::zeros(m.dim());
        let mut n = 0;
        for start in 0..m.len() {
            let ix = (start / (nj * ni), start / ni % nj, start % ni);
            if !m[ix] || lab[ix] != 0 {
                continue;
            }
            n += 1;
            lab[ix] = n;
            let mut queue = std::collections::VecDeque::from([ix]);
            while let Some((k, j, i)) = queue.pop_front() {
                for dk in -1i64..=1 {
                    for dj in -1i64..=1 {
                        for di in -1i64..=1 {
                            let off = dk.abs() + dj.abs() + di.abs();
                            if off == 0 || (conn == Connectivity::Six && off > 1) {
                                continue;
                            }
                            let (a, b, c) = (k as i64 + dk, j as i64 + dj, i as i64 + di);
                            if a < 0
                                || b < 0
                                || c < 0
                                || a >= nk as i64
                                || b >= nj as i64
                                || c >= ni as i64
                            {
                                continue;
                            }
                            let nb = (a as usize, b as usize, c as usize);
                            if m[nb] && lab[nb] == 0 {
                                lab[nb] = n;
                                queue.push_back(nb);
                            }
                        }
                    }
                }
            }
        }
        (lab, n as usize)
    }

    #[test]
    fn matches_flood_fill_on_random_masks() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        for &(shape, density) in &[
            ((4, 6, 100), 0.3),
            ((5, 5, 70), 0.85),
            ((3, 40, 7), 0.5),
            ((6, 8, 64), 0.05),
        ] {
            let m = Array3::from_shape_fn(shape, |_| rnd() < density);
            for conn in [Connectivity::Six, Connectivity::TwentySix] {
                let (got, n) = label_components(m.view(), conn);
                let (want, nw) = flood_fill(&m, conn);
                assert_eq!(n, nw, "{shape:?} {density} {conn:?}");
                assert_eq!(got, want, "{shape:?} {density} {conn:?}");
            }
        }
    }

    #[test]
    fn empty_mask() {
        let m = Array3::from_elem((2, 2, 2), false);
        let (l, n) = label_components(m.view(), Connectivity::TwentySix);
        assert_eq!(n, 0);
        assert!(l.iter().all(|&x| x == 0));
        assert!(largest_component(m.view()).iter().all(|&b| !b));
    }
}
