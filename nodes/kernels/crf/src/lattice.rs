//! Permutohedral lattice (Adams, Baek & Davis 2010) for Gaussian filtering in
//! `D` dimensions, following the arithmetic of Kraehenbuehl's densecrf 2.x
//! (`permutohedral.cpp`, SSE path) so that results agree with pydensecrf.
//!
//! The filter computes, for every point `i`, `alpha * sum_j k(f_i, f_j) v_j`
//! with `k` approximately `exp(-|f_i - f_j|^2 / 2)` (features already divided
//! by their standard deviations). The `i = j` term is included.
//!
//! Every point's `D+1` vertex ids and barycentric weights are stored
//! ([`PointTable`], `8 (D + 1)` bytes per point, as densecrf), so repeated
//! splats and slices read them instead of searching the simplex again. The
//! blur walks 1-D chains through a table of `+axis` neighbours per vertex
//! ([`LatticeGraph`]).

use rayon::prelude::*;
use std::ops::Range;

const MAXD: usize = 4;
const NONE: u32 = u32::MAX;

/// Lattice position of one point: vertex-0 key, rank permutation and
/// barycentric weights (indices `0..=D` used).
#[derive(Clone, Copy)]
pub(crate) struct Simplex {
    pub rem0: [i32; MAXD + 1],
    pub rank: [u8; MAXD + 1],
    pub bary: [f32; MAXD + 2],
}

/// Per-dimension scale factors of the elevation matrix (as densecrf: double
/// arithmetic rounded to f32).
fn scale_factors<const D: usize>() -> [f32; MAXD] {
    let inv_std_dev = ((2.0f64 / 3.0).sqrt() * (D as f64 + 1.0)) as f32;
    let mut s = [0f32; MAXD];
    for (i, si) in s.iter_mut().enumerate().take(D) {
        *si = (1.0 / (((i + 2) * (i + 1)) as f64).sqrt() * inv_std_dev as f64) as f32;
    }
    s
}

#[inline(always)]
fn simplex<const D: usize>(f: &[f32; D], sf: &[f32; MAXD]) -> Simplex {
    let dp1 = (D + 1) as f32;
    let inv = 1.0f32 / dp1;
    let mut el = [0f32; MAXD + 1];
    let mut sm = 0f32;
    for j in (1..=D).rev() {
        let cf = f[j - 1] * sf[j - 1];
        el[j] = sm - (j as f32) * cf;
        sm += cf;
    }
    el[0] = sm;
    let mut rem0f = [0f32; MAXD + 1];
    let mut sum = 0f32;
    for i in 0..=D {
        let v = round_even(inv * el[i]);
        rem0f[i] = v * dp1;
        sum += v;
    }
    // rank of each coordinate of el - rem0 (branch-free)
    let mut rank = [0i32; MAXD + 1];
    for i in 0..D {
        let di = el[i] - rem0f[i];
        for j in i + 1..=D {
            let dj = el[j] - rem0f[j];
            let lt = (di < dj) as i32;
            rank[i] += lt;
            rank[j] += 1 - lt;
        }
    }
    // bring the point back onto the plane (sum != 0)
    let isum = sum as i32;
    let d1 = D as i32 + 1;
    let mut rem0 = [0i32; MAXD + 1];
    for i in 0..=D {
        let r = rank[i] + isum;
        let adj = d1 * ((r < 0) as i32 - (r >= d1) as i32);
        rank[i] = r + adj;
        rem0f[i] += adj as f32;
        rem0[i] = rem0f[i] as i32;
    }
    // barycentric weights: with u[D - rank_i] = (el_i - rem0_i) / (D+1),
    // bary[p] = u[p] - u[p-1], bary[0] = u[0] + (1 - u[D]) (same floats as
    // densecrf's += / -= accumulation)
    let mut u = [0f32; MAXD + 1];
    let mut ranku = [0u8; MAXD + 1];
    for i in 0..=D {
        let r = rank[i] as usize;
        ranku[i] = r as u8;
        u[D - r] = (el[i] - rem0f[i]) * inv;
    }
    let mut bary = [0f32; MAXD + 2];
    for p in 1..=D {
        bary[p] = u[p] - u[p - 1];
    }
    bary[D + 1] = -u[D];
    bary[0] = u[0] + (1.0 + bary[D + 1]);
    Simplex {
        rem0,
        rank: ranku,
        bary,
    }
}

/// Round half to even (as SSE `cvtps2dq`) without a libm call; exact for |x| < 2^22.
#[inline(always)]
fn round_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    (x + MAGIC) - MAGIC
}

/// Point features of a lattice, in units of the kernel standard deviation.
pub trait Features<const D: usize>: Sync {
    /// Feature vector of point `i`.
    fn get(&self, i: usize) -> [f32; D];
}

impl<const D: usize, F: Fn(usize) -> [f32; D] + Sync> Features<D> for F {
    #[inline(always)]
    fn get(&self, i: usize) -> [f32; D] {
        self(i)
    }
}

#[inline(always)]
fn pack<const D: usize>(key: &[i32; MAXD + 1]) -> u64 {
    let mut k = 0u64;
    for &v in key.iter().take(D) {
        assert!(
            (i16::MIN as i32..=i16::MAX as i32).contains(&v),
            "lattice key out of range: features span too many standard deviations"
        );
        k = (k << 16) | (v as i16 as u16 as u64);
    }
    k
}

#[inline(always)]
fn unpack<const D: usize>(mut k: u64) -> [i32; MAXD + 1] {
    let mut key = [0i32; MAXD + 1];
    for i in (0..D).rev() {
        key[i] = (k & 0xffff) as u16 as i16 as i32;
        k >>= 16;
    }
    key
}

#[inline(always)]
fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching a valid reference has no side effects.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            x as *const T as *const i8,
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Open-addressing hash map from packed keys to dense ids.
struct HashTable {
    keys: Vec<u64>,
    table: Vec<u32>,
    mask: usize,
}

impl HashTable {
    fn new(cap_hint: usize) -> Self {
        let cap = (cap_hint.max(16) * 2).next_power_of_two();
        HashTable {
            keys: Vec::with_capacity(cap_hint),
            table: vec![NONE; cap],
            mask: cap - 1,
        }
    }
    #[inline(always)]
    fn slot(&self, k: u64) -> usize {
        (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & self.mask
    }
    fn grow(&mut self) {
        let cap = self.table.len() * 2;
        self.table = vec![NONE; cap];
        self.mask = cap - 1;
        for (id, &k) in self.keys.iter().enumerate() {
            let mut h = self.slot(k);
            while self.table[h] != NONE {
                h = (h + 1) & self.mask;
            }
            self.table[h] = id as u32;
        }
    }
    #[inline(always)]
    fn insert(&mut self, k: u64) -> u32 {
        if 2 * self.keys.len() >= self.table.len() {
            self.grow();
        }
        let mut h = self.slot(k);
        loop {
            let e = self.table[h];
            if e == NONE {
                let id = self.keys.len() as u32;
                self.keys.push(k);
                self.table[h] = id;
                return id;
            }
            if self.keys[e as usize] == k {
                return e;
            }
            h = (h + 1) & self.mask;
        }
    }
    /// `out[i] = find(keys[i])`, prefetching the table slots first so that
    /// the cache misses of a batch overlap.
    fn find_batch(&self, keys: &[u64], out: &mut [u32]) {
        for &k in keys {
            prefetch(&self.table[self.slot(k)]);
        }
        for (o, &k) in out.iter_mut().zip(keys) {
            *o = self.find(k);
        }
    }
    #[inline(always)]
    fn find(&self, k: u64) -> u32 {
        let mut h = self.slot(k);
        loop {
            let e = self.table[h];
            if e == NONE || self.keys[e as usize] == k {
                return e;
            }
            h = (h + 1) & self.mask;
        }
    }
}

/// Raw pointer shared between rayon tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: only used where every task writes a disjoint set of elements
// (see `PointTable::splat_into` and `LatticeGraph::blur`).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

/// Max feature-space distance between a point and the vertices of its
/// simplex, in standard deviations: the simplex diameter
/// `sqrt(r (D+1-r) (D+1))` (max over r) divided by the elevation scale
/// `sqrt(2/3) (D+1)` (the elevation matrix is that scale times an isometry).
pub fn vertex_reach(d: usize) -> f32 {
    let d1 = d as f32 + 1.0;
    let diam2 = (0..=d)
        .map(|r| r as f32 * (d1 - r as f32) * d1)
        .fold(0.0, f32::max);
    diam2.sqrt() / ((2.0f32 / 3.0).sqrt() * d1)
}

/// A permutohedral lattice over `n` points: its vertex graph and every
/// point's vertices and barycentric weights. `D` must be 1..=4.
pub struct Lattice<const D: usize> {
    graph: LatticeGraph<D>,
    pts: PointTable<D>,
}

/// The vertices of a lattice and their neighbours along the `D + 1` axes:
/// what the blur needs.
pub struct LatticeGraph<const D: usize> {
    /// `n2[i * (D+1) + j]`: neighbour of vertex `i` one step along `+axis j`
    /// (key + 1 everywhere, - D on coordinate j); `NONE` if absent.
    n2: Vec<u32>,
    /// Bit j set: the vertex has a predecessor along axis j (is not the
    /// start of a 1-D chain).
    has_pred: Vec<u8>,
    m: usize,
}

impl<const D: usize> Lattice<D> {
    /// Builds the lattice serially (one hash table over all points) from the
    /// points' features (`feat.get(i)`, in units of the kernel's standard
    /// deviation).
    pub fn new<F: Features<D>>(n: usize, feat: F) -> Self {
        Self::with_slabs(n, feat, std::slice::from_ref(&(0..n)))
    }

    /// Builds the lattice in parallel over `slabs`: consecutive point ranges
    /// covering `0..n` in order, such that the vertices of a point and their
    /// lattice neighbours are only shared with points of the same or an
    /// adjacent slab (for z-slabs of a grid: slabs at least
    /// `3 * vertex_reach(D)` thick in feature units). Each slab gets its own
    /// hash table; vertices are numbered slab by slab; the tables are dropped
    /// at the end.
    pub fn with_slabs<F: Features<D>>(n: usize, feat: F, slabs: &[Range<usize>]) -> Self {
        assert!((1..=MAXD).contains(&D), "lattice dimension must be 1..=4");
        assert!(n < u32::MAX as usize, "too many points");
        assert!(
            slabs.first().map_or(n == 0, |r| r.start == 0)
                && slabs.last().is_none_or(|r| r.end == n)
                && slabs.windows(2).all(|w| w[0].end == w[1].start),
            "slabs must cover 0..n in order"
        );
        let sf = scale_factors::<D>();
        let t0 = std::time::Instant::now();
        let d1 = D + 1;
        let mut ids = vec![0u32; n * d1];
        let mut w = vec![0f32; n * d1];
        // 1. local tables, local vertex ids and barycentric weights
        let mut parts: Vec<(&mut [u32], &mut [f32])> = Vec::with_capacity(slabs.len());
        let (mut ri, mut rw) = (&mut ids[..], &mut w[..]);
        for r in slabs {
            let (a, b) = ri.split_at_mut(r.len() * d1);
            let (c, d) = rw.split_at_mut(r.len() * d1);
            parts.push((a, c));
            (ri, rw) = (b, d);
        }
        let build = |(oi, ow): (&mut [u32], &mut [f32]), r: &Range<usize>, hint: usize| {
            let mut ht = HashTable::new(hint);
            // direct-mapped cache of recently seen simplices -> vertex ids
            const CACHE: usize = 4096;
            let mut cache = vec![(u64::MAX, 0u32, [0u32; MAXD + 1]); CACHE];
            // batches of B points: compute all keys and prefetch their table
            // slots, then insert in point order (same ids as one at a time)
            const B: usize = 16;
            let mut keys = [[0u64; MAXD + 1]; B];
            let mut tag = [(0u64, 0u32, 0usize); B];
            for ((bi, bw), start) in oi
                .chunks_mut(B * d1)
                .zip(ow.chunks_mut(B * d1))
                .zip(r.clone().step_by(B))
            {
                for (x, wv) in bw.chunks_exact_mut(d1).enumerate() {
                    let s = simplex::<D>(&feat.get(start + x), &sf);
                    wv.copy_from_slice(&s.bary[..d1]);
                    let k0 = pack::<D>(&s.rem0);
                    let rc = s.rank[..=D].iter().fold(0u32, |a, &x| (a << 3) | x as u32);
                    let slot = ((k0 ^ rc as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52)
                        as usize
                        & (CACHE - 1);
                    tag[x] = (k0, rc, slot);
                    if cache[slot].0 == k0 && cache[slot].1 == rc {
                        bi[x * d1..][..d1].copy_from_slice(&cache[slot].2[..d1]);
                        tag[x].2 = usize::MAX; // done
                        continue;
                    }
                    for rr in 0..=D {
                        let mut key = [0i32; MAXD + 1];
                        for c in 0..D {
                            let rk = s.rank[c] as usize;
                            let can = if rk <= D - rr {
                                rr as i32
                            } else {
                                rr as i32 - (D as i32 + 1)
                            };
                            key[c] = s.rem0[c] + can;
                        }
                        keys[x][rr] = pack::<D>(&key);
                        prefetch(&ht.table[ht.slot(keys[x][rr])]);
                    }
                }
                for (x, iv) in bi.chunks_exact_mut(d1).enumerate() {
                    let (k0, rc, slot) = tag[x];
                    if slot == usize::MAX {
                        continue;
                    }
                    if cache[slot].0 == k0 && cache[slot].1 == rc {
                        // inserted earlier in this batch
                        iv.copy_from_slice(&cache[slot].2[..d1]);
                        continue;
                    }
                    let mut v = [0u32; MAXD + 1];
                    for rr in 0..=D {
                        v[rr] = ht.insert(keys[x][rr]);
                    }
                    iv.copy_from_slice(&v[..d1]);
                    cache[slot] = (k0, rc, v);
                }
            }
            ht
        };
        // slab 0 first: its vertices per point size the other tables (no regrowth)
        let mut parts = parts.into_iter();
        let t0tab = build(parts.next().unwrap(), &slabs[0], slabs[0].len() / 16 + 16);
        let ratio = t0tab.keys.len() as f64 / slabs[0].len().max(1) as f64;
        let rest: Vec<HashTable> = parts
            .collect::<Vec<_>>()
            .into_par_iter()
            .zip(slabs[1..].par_iter())
            .map(|(out, r)| build(out, r, (r.len() as f64 * ratio * 1.1) as usize + 16))
            .collect();
        let mut tables = Vec::with_capacity(slabs.len());
        tables.push(t0tab);
        tables.extend(rest);
        // 2. global ids: keys already present in the previous slab (shared
        // vertices, marked with the top bit) inherit its id, new keys are
        // numbered slab by slab
        const SHARED: u32 = 1 << 31;
        let mut map: Vec<Vec<u32>> = (0..tables.len())
            .into_par_iter()
            .map(|t| {
                if t == 0 {
                    vec![NONE; tables[0].keys.len()]
                } else {
                    let mut d = vec![NONE; tables[t].keys.len()];
                    for (o, k) in d.chunks_mut(64).zip(tables[t].keys.chunks(64)) {
                        tables[t - 1].find_batch(k, o);
                    }
                    d.iter_mut()
                        .filter(|x| **x != NONE)
                        .for_each(|x| *x |= SHARED);
                    d
                }
            })
            .collect();
        let mut offset = Vec::with_capacity(tables.len() + 1);
        offset.push(0usize);
        for d in &map {
            let new = d.iter().filter(|&&x| x == NONE).count();
            offset.push(offset.last().unwrap() + new);
        }
        let m = *offset.last().unwrap();
        assert!(m < SHARED as usize, "too many lattice vertices");
        map.par_iter_mut().enumerate().for_each(|(t, d)| {
            let mut next = offset[t] as u32;
            for x in d.iter_mut() {
                if *x == NONE {
                    *x = next;
                    next += 1;
                }
            }
        });
        for t in 1..map.len() {
            let (lo, hi) = map.split_at_mut(t);
            for g in hi[0].iter_mut() {
                if *g & SHARED != 0 {
                    // new in slab t-1 (slabs two apart share nothing)
                    *g = lo[t - 1][(*g & !SHARED) as usize];
                    debug_assert!(*g & SHARED == 0);
                }
            }
        }
        let t1 = std::time::Instant::now();
        // 3. neighbours of the vertices owned by each slab (in slabs t-1..=t+1)
        let mut n2 = vec![NONE; (D + 1) * m];
        let mut parts: Vec<&mut [u32]> = Vec::with_capacity(tables.len());
        let mut rest = &mut n2[..];
        for t in 0..tables.len() {
            let (a, b) = rest.split_at_mut((offset[t + 1] - offset[t]) * (D + 1));
            parts.push(a);
            rest = b;
        }
        parts.into_par_iter().enumerate().for_each(|(t, out)| {
            let lo = t.saturating_sub(1);
            let hi = (t + 1).min(tables.len() - 1);
            // owned vertices (not shared with slab t-1) in id order
            let own: Vec<u32> = (0..tables[t].keys.len() as u32)
                .filter(|&l| map[t][l as usize] >= offset[t] as u32)
                .collect();
            debug_assert_eq!(own.len(), offset[t + 1] - offset[t]);
            const B: usize = 32;
            let mut keys = [0u64; B * (MAXD + 1)];
            let mut found = [NONE; B * (MAXD + 1)];
            for (bi, blk) in own.chunks(B).enumerate() {
                let nk = blk.len() * (D + 1);
                for (x, &l) in blk.iter().enumerate() {
                    let key = unpack::<D>(tables[t].keys[l as usize]);
                    for j in 0..=D {
                        let mut k2 = [0i32; MAXD + 1];
                        for a in 0..D {
                            k2[a] = key[a] + 1;
                        }
                        if j < D {
                            k2[j] = key[j] - D as i32;
                        }
                        keys[x * (D + 1) + j] = pack::<D>(&k2);
                    }
                }
                let dst = &mut out[bi * B * (D + 1)..bi * B * (D + 1) + nk];
                tables[t].find_batch(&keys[..nk], &mut found[..nk]);
                for (d, &f) in dst.iter_mut().zip(&found[..nk]) {
                    *d = if f == NONE { NONE } else { map[t][f as usize] };
                }
                for u in [hi, lo] {
                    if u == t {
                        continue;
                    }
                    for (d, &k) in dst.iter_mut().zip(&keys[..nk]) {
                        if *d == NONE {
                            let f = tables[u].find(k);
                            if f != NONE {
                                *d = map[u][f as usize];
                            }
                        }
                    }
                }
            }
        });
        drop(tables);
        // 4. local -> global vertex ids
        let mut parts: Vec<&mut [u32]> = Vec::with_capacity(slabs.len());
        let mut rest = &mut ids[..];
        for r in slabs {
            let (a, b) = rest.split_at_mut(r.len() * d1);
            parts.push(a);
            rest = b;
        }
        parts
            .into_par_iter()
            .zip(map.par_iter())
            .for_each(|(out, mp)| {
                for x in out.iter_mut() {
                    *x = mp[*x as usize];
                }
            });
        drop(map);
        // bit j of has_pred[v]: v is some vertex's n2 along axis j (not a chain start)
        let mut has_pred = vec![0u8; m];
        for i in 0..m {
            for j in 0..=D {
                let t = n2[i * (D + 1) + j];
                if t != NONE {
                    has_pred[t as usize] |= 1 << j;
                }
            }
        }
        if std::env::var_os("VOXFLOW_CRF_DEBUG").is_some() {
            let st = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let hwm: String = st
                .lines()
                .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
                .collect();
            eprintln!(
                "lattice d={D}: n {n} m {m} slabs {} build {:?} neighbours {:?} {hwm}",
                slabs.len(),
                t1 - t0,
                t1.elapsed()
            );
        }
        Lattice {
            graph: LatticeGraph { n2, has_pred, m },
            pts: PointTable { m, ids, w },
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.pts.len()
    }

    /// True if there are no points.
    pub fn is_empty(&self) -> bool {
        self.pts.is_empty()
    }

    /// Number of lattice vertices.
    pub fn num_vertices(&self) -> usize {
        self.graph.m
    }

    /// The vertex graph (for the blur) and the point table (for splat and
    /// slice).
    pub fn into_parts(self) -> (LatticeGraph<D>, PointTable<D>) {
        (self.graph, self.pts)
    }

    /// Full filter: splat, blur, slice (serial splat). `input` and the
    /// result are `n x c` row-major.
    pub fn filter(&self, input: &[f32], c: usize) -> Vec<f32> {
        let n = self.len();
        assert_eq!(input.len(), n * c);
        let mut vals = self.graph.new_values(c);
        for i in 0..n {
            self.pts.splat(i, &mut vals, c, &input[i * c..(i + 1) * c]);
        }
        self.graph.blur(&mut vals, c);
        let mut out = vec![0f32; n * c];
        out.par_chunks_mut(c * 1024)
            .enumerate()
            .for_each(|(ci, ch)| {
                for (o, oc) in ch.chunks_exact_mut(c).enumerate() {
                    self.pts.slice(ci * 1024 + o, &vals, c, oc);
                }
            });
        out
    }
}

/// densecrf's slice scale `1 / (1 + 2^-D)`.
fn slice_alpha(d: usize) -> f32 {
    1.0f32 / (1.0 + 2f32.powi(-(d as i32)))
}

/// `out = alpha * sum_r w_r values[v_r]` (densecrf's arithmetic).
#[inline(always)]
fn slice_one<const D: usize>(
    v: &[u32],
    w: &[f32],
    alpha: f32,
    values: &[f32],
    c: usize,
    out: &mut [f32],
) {
    out[..c].iter_mut().for_each(|x| *x = 0.0);
    for r in 0..=D {
        let o = v[r] as usize * c;
        if c <= 2 {
            // densecrf's scalar path: (w * v) * alpha
            for k in 0..c {
                out[k] += w[r] * values[o + k] * alpha;
            }
        } else {
            let wa = w[r] * alpha;
            for k in 0..c {
                out[k] += wa * values[o + k];
            }
        }
    }
}

impl<const D: usize> LatticeGraph<D> {
    /// Number of lattice vertices.
    pub fn num_vertices(&self) -> usize {
        self.m
    }

    /// A zeroed vertex buffer for `c` values per vertex.
    pub fn new_values(&self, c: usize) -> Vec<f32> {
        vec![0f32; self.m * c]
    }
    /// Blurs a vertex buffer in place along the `D+1` lattice axes in order
    /// 0..=D with the kernel `[0.5, 1, 0.5]` (missing neighbours count as 0).
    pub fn blur(&self, values: &mut [f32], c: usize) {
        assert_eq!(values.len(), self.m * c);
        assert!(c <= 16, "at most 16 values per point");
        let ptr = SharedMut(values.as_mut_ptr());
        for j in 0..=D {
            const CH: usize = 4096;
            self.has_pred
                .par_chunks(CH)
                .enumerate()
                .for_each(|(ci, hp)| {
                    let p = ptr;
                    // Walk the chains starting in this block: s -> n2(s) -> ...;
                    // each vertex is on exactly one chain per axis, so chains are
                    // disjoint. LANES chains are advanced in turn to overlap their
                    // memory latencies.
                    const LANES: usize = 8;
                    let mut sts = hp
                        .iter()
                        .enumerate()
                        .filter(|(_, &h)| h & (1 << j) == 0)
                        .map(|(o, _)| (ci * CH + o) as u32);
                    let mut cur = [NONE; LANES];
                    let mut prev = [[0f32; 16]; LANES];
                    let mut more = true;
                    loop {
                        let mut active = false;
                        for l in 0..LANES {
                            if cur[l] == NONE {
                                match sts.next().filter(|_| more) {
                                    Some(s) => cur[l] = s,
                                    None => {
                                        more = false;
                                        continue;
                                    }
                                }
                                prev[l] = [0f32; 16];
                            }
                            active = true;
                            let cu = cur[l] as usize;
                            let nx = self.n2[cu * (D + 1) + j];
                            // SAFETY: cu, nx < m; only this lane touches this chain.
                            unsafe {
                                let pc = p.0.add(cu * c);
                                for k in 0..c {
                                    let old = *pc.add(k);
                                    let nv = if nx == NONE {
                                        0.0
                                    } else {
                                        *p.0.add(nx as usize * c + k)
                                    };
                                    *pc.add(k) = old + 0.5 * (prev[l][k] + nv);
                                    prev[l][k] = old;
                                }
                            }
                            cur[l] = nx;
                        }
                        if !active {
                            break;
                        }
                    }
                });
        }
    }
}

/// Vertex ids and barycentric weights of every point of a lattice:
/// `8 (D + 1)` bytes per point, so that splats and slices skip the simplex
/// search.
pub struct PointTable<const D: usize> {
    m: usize,
    ids: Vec<u32>,
    w: Vec<f32>,
}

impl<const D: usize> PointTable<D> {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.ids.len() / (D + 1)
    }

    /// True if there are no points.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Multiplies the weights of point `i` by `f(i)`: splats then add
    /// `f(i) * value` and slices return `f(i) *` the slice.
    pub fn scale_weights(&mut self, f: impl Fn(usize) -> f32 + Sync) {
        self.w.par_chunks_mut(D + 1).enumerate().for_each(|(i, w)| {
            let s = f(i);
            w.iter_mut().for_each(|x| *x *= s);
        });
    }

    /// Slices point `i` from a blurred vertex buffer:
    /// `out = alpha * sum_r w_r values[v_r]` (`alpha = 1 / (1 + 2^-D)`, as densecrf).
    #[inline(always)]
    pub fn slice(&self, i: usize, values: &[f32], c: usize, out: &mut [f32]) {
        slice_one::<D>(
            &self.ids[i * (D + 1)..][..=D],
            &self.w[i * (D + 1)..][..=D],
            slice_alpha(D),
            values,
            c,
            out,
        );
    }

    /// Adds `w_r * vals` of point `i` to its vertices in `buf` (`m * c`).
    #[inline(always)]
    pub fn splat(&self, i: usize, buf: &mut [f32], c: usize, vals: &[f32]) {
        assert_eq!(buf.len(), self.m * c);
        // SAFETY: `buf` holds m * c values and every vertex id is < m.
        unsafe { self.splat_ptr(i, buf.as_mut_ptr(), c, vals) }
    }

    /// [`Self::splat`] through a pointer to an `m * c` buffer.
    ///
    /// # Safety
    /// `buf` must point to `m * c` values that no other thread accesses at
    /// point `i`'s vertices meanwhile.
    #[inline(always)]
    unsafe fn splat_ptr(&self, i: usize, buf: *mut f32, c: usize, vals: &[f32]) {
        let ids = &self.ids[i * (D + 1)..][..=D];
        let w = &self.w[i * (D + 1)..][..=D];
        for r in 0..=D {
            let o = ids[r] as usize * c;
            debug_assert!(o + c <= self.m * c);
            for k in 0..c {
                *buf.add(o + k) += w[r] * vals[k];
            }
        }
    }

    /// Splats `c` values per point (`vals(i, out)` fills point `i`'s values)
    /// into `values` (`m * c`, overwritten).
    ///
    /// `groups`: point ranges; the ranges of one group run in parallel, groups
    /// one after the other. Ranges of one group must not share lattice
    /// vertices (e.g. z-slabs of a grid separated by more than
    /// `2 * vertex_reach(D)` in feature units). With a small lattice
    /// (`8 m threads <= n`) the groups are ignored: tasks splat into private
    /// buffers that are then summed.
    pub fn splat_into<V>(&self, values: &mut [f32], c: usize, groups: &[Vec<Range<usize>>], vals: V)
    where
        V: Fn(usize, &mut [f32]) + Sync,
    {
        assert_eq!(values.len(), self.m * c);
        assert!(c <= 16, "at most 16 values per point");
        let n = self.len();
        values.par_iter_mut().for_each(|x| *x = 0.0);
        let threads = rayon::current_num_threads();
        if threads > 1 && self.m * threads * 8 <= n {
            // small lattice: private buffers per part, summed in part order
            let part = n.div_ceil(threads * 4);
            let bufs: Vec<Vec<f32>> = (0..n.div_ceil(part))
                .into_par_iter()
                .map(|t| {
                    let mut buf = vec![0f32; self.m * c];
                    let mut tmp = [0f32; 16];
                    for i in t * part..((t + 1) * part).min(n) {
                        vals(i, &mut tmp[..c]);
                        self.splat(i, &mut buf, c, &tmp[..c]);
                    }
                    buf
                })
                .collect();
            sum_buffers(&bufs, values);
            return;
        }
        let ptr = SharedMut(values.as_mut_ptr());
        for g in groups {
            g.par_iter().for_each(|range| {
                let p = ptr;
                let mut tmp = [0f32; 16];
                for i in range.clone() {
                    vals(i, &mut tmp[..c]);
                    // SAFETY: `values` holds m * c values; ranges running
                    // concurrently touch disjoint vertices (contract of `groups`).
                    unsafe { self.splat_ptr(i, p.0, c, &tmp[..c]) };
                }
            });
        }
    }
}

/// `out = sum of bufs` (all of `out`'s length), adding the buffers in their
/// order so that the result does not depend on thread scheduling.
pub(crate) fn sum_buffers(bufs: &[Vec<f32>], out: &mut [f32]) {
    const CH: usize = 4096;
    out.par_chunks_mut(CH).enumerate().for_each(|(ci, o)| {
        o.iter_mut().for_each(|x| *x = 0.0);
        for b in bufs {
            for (x, y) in o.iter_mut().zip(&b[ci * CH..]) {
                *x += *y;
            }
        }
    });
}

/// Filters `values` (`n x c`, row-major) with the permutohedral Gaussian
/// filter over `features` (`n x d`, row-major, in units of the standard
/// deviation), `d` in 1..=4. Returns `n x c` (including the `alpha` scale and
/// the `i = j` term, as densecrf).
pub fn permutohedral_filter(features: &[f32], d: usize, values: &[f32], c: usize) -> Vec<f32> {
    let n = values.len() / c.max(1);
    assert_eq!(features.len(), n * d);
    fn run<const D: usize>(features: &[f32], n: usize, values: &[f32], c: usize) -> Vec<f32> {
        let lat = Lattice::<D>::new(n, |i: usize| {
            let mut f = [0f32; D];
            f.copy_from_slice(&features[i * D..(i + 1) * D]);
            f
        });
        lat.filter(values, c)
    }
    match d {
        1 => run::<1>(features, n, values, c),
        2 => run::<2>(features, n, values, c),
        3 => run::<3>(features, n, values, c),
        4 => run::<4>(features, n, values, c),
        _ => panic!("permutohedral_filter supports 1..=4 feature dimensions"),
    }
}
