//! Permutohedral lattice (Adams, Baek & Davis 2010) for Gaussian filtering in
//! `D` dimensions, following the arithmetic of Kraehenbuehl's densecrf 2.x
//! (`permutohedral.cpp`, SSE path) so that results agree with pydensecrf.
//!
//! The filter computes, for every point `i`, `alpha * sum_j k(f_i, f_j) v_j`
//! with `k` approximately `exp(-|f_i - f_j|^2 / 2)` (features already divided
//! by their standard deviations). The `i = j` term is included.
//!
//! Memory: instead of storing the `D+1` vertex offsets and barycentric
//! weights of every point (as densecrf does), only the index of the
//! remainder-0 vertex is stored (4 bytes per point). The barycentric weights
//! are recomputed from the features on the fly, and vertex `r+1` is reached
//! from vertex `r` through the blur-neighbour table (it is the `n2`
//! neighbour along the axis whose rank is `D - r`).

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

/// Vertex indices and barycentric weights of one point.
#[derive(Clone, Copy)]
pub struct Located {
    v: [u32; MAXD + 1],
    b: [f32; MAXD + 2],
}

/// Raw pointer shared between rayon tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: only used where every task writes a disjoint set of elements
// (see `splat_into` and `blur`).
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

/// A permutohedral lattice over `n` points whose `D`-dimensional features
/// are produced on demand by `feat.get(i)` (features in units of the kernel's
/// standard deviation). `D` must be 1..=4.
pub struct Lattice<const D: usize, F> {
    feat: F,
    n: usize,
    sf: [f32; MAXD],
    /// Vertex-0 lattice index of every point.
    v0: Vec<u32>,
    /// `n2[i * (D+1) + j]`: neighbour of vertex `i` one step along `+axis j`
    /// (key + 1 everywhere, - D on coordinate j); `NONE` if absent.
    n2: Vec<u32>,
    /// Bit j set: the vertex has a predecessor along axis j (is not the
    /// start of a 1-D chain).
    has_pred: Vec<u8>,
    m: usize,
}

impl<const D: usize, F: Features<D>> Lattice<D, F> {
    /// Builds the lattice serially (one hash table over all points).
    pub fn new(n: usize, feat: F) -> Self {
        Self::with_slabs(n, feat, std::slice::from_ref(&(0..n)))
    }

    /// Builds the lattice in parallel over `slabs`: consecutive point ranges
    /// covering `0..n` in order, such that the vertices of a point and their
    /// lattice neighbours are only shared with points of the same or an
    /// adjacent slab (for z-slabs of a grid: slabs at least
    /// `3 * vertex_reach(D)` thick in feature units). Each slab gets its own
    /// hash table; vertices are numbered slab by slab; the tables are dropped
    /// at the end.
    pub fn with_slabs(n: usize, feat: F, slabs: &[Range<usize>]) -> Self {
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
        let mut v0 = vec![0u32; n];
        // 1. local tables and local vertex-0 ids
        let mut parts: Vec<&mut [u32]> = Vec::with_capacity(slabs.len());
        let mut rest = &mut v0[..];
        for r in slabs {
            let (a, b) = rest.split_at_mut(r.len());
            parts.push(a);
            rest = b;
        }
        let build = |out: &mut [u32], r: &Range<usize>, hint: usize| {
            let mut ht = HashTable::new(hint);
            // direct-mapped cache of recently seen simplices -> vertex-0 id
            const CACHE: usize = 4096;
            let mut cache = vec![(u64::MAX, 0u32, 0u32); CACHE];
            // batches of B points: compute all keys and prefetch their table
            // slots, then insert in point order (same ids as one at a time)
            const B: usize = 16;
            let mut keys = [[0u64; MAXD + 1]; B];
            let mut tag = [(0u64, 0u32, 0usize); B];
            for (ob, start) in out.chunks_mut(B).zip(r.clone().step_by(B)) {
                for (x, o) in ob.iter_mut().enumerate() {
                    let s = simplex::<D>(&feat.get(start + x), &sf);
                    let k0 = pack::<D>(&s.rem0);
                    let rc = s.rank[..=D].iter().fold(0u32, |a, &x| (a << 3) | x as u32);
                    let slot = ((k0 ^ rc as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52)
                        as usize
                        & (CACHE - 1);
                    tag[x] = (k0, rc, slot);
                    if cache[slot].0 == k0 && cache[slot].1 == rc {
                        *o = cache[slot].2;
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
                for (x, o) in ob.iter_mut().enumerate() {
                    let (k0, rc, slot) = tag[x];
                    if slot == usize::MAX {
                        continue;
                    }
                    if cache[slot].0 == k0 && cache[slot].1 == rc {
                        *o = cache[slot].2; // inserted earlier in this batch
                        continue;
                    }
                    let mut first = 0;
                    for rr in 0..=D {
                        let id = ht.insert(keys[x][rr]);
                        if rr == 0 {
                            first = id;
                        }
                    }
                    *o = first;
                    cache[slot] = (k0, rc, first);
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
        // 4. local -> global vertex-0 ids
        let mut parts: Vec<&mut [u32]> = Vec::with_capacity(slabs.len());
        let mut rest = &mut v0[..];
        for r in slabs {
            let (a, b) = rest.split_at_mut(r.len());
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
            feat,
            n,
            sf,
            v0,
            n2,
            has_pred,
            m,
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True if there are no points.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Number of lattice vertices.
    pub fn num_vertices(&self) -> usize {
        self.m
    }

    /// Bytes held by the lattice (excluding the feature source).
    pub fn memory_bytes(&self) -> usize {
        self.v0.len() * 4 + self.n2.len() * 4 + self.has_pred.len()
    }

    /// Vertex indices and barycentric weights of point `i`.
    #[inline(always)]
    fn vertices(&self, i: usize) -> ([u32; MAXD + 1], [f32; MAXD + 2]) {
        let s = simplex::<D>(&self.feat.get(i), &self.sf);
        let mut axis_of = [0usize; MAXD + 1];
        for c in 0..=D {
            axis_of[s.rank[c] as usize] = c;
        }
        if let Some(&a) = self.v0.get(i + 16) {
            prefetch(&self.n2[a as usize * (D + 1)]);
        }
        let mut v = [0u32; MAXD + 1];
        v[0] = self.v0[i];
        for r in 0..D {
            // vertex r+1 = n2 neighbour of vertex r along the axis of rank D-r
            v[r + 1] = self.n2[v[r] as usize * (D + 1) + axis_of[D - r]];
        }
        (v, s.bary)
    }

    /// A zeroed vertex buffer for `c` values per vertex.
    pub fn new_values(&self, c: usize) -> Vec<f32> {
        vec![0f32; self.m * c]
    }

    /// Splats `c` values per point (`vals(i, out)` fills point `i`'s values)
    /// into `values` (`m * c`, overwritten).
    ///
    /// `groups`: point ranges; the ranges of one group run in parallel, groups
    /// one after the other. Ranges of one group must not share lattice
    /// vertices (e.g. z-slabs of a grid separated by more than
    /// `2 * vertex_reach(D)` in feature units); `None` runs serially. With
    /// `Some` and a small lattice (`8 m threads <= n`) the groups are ignored:
    /// tasks splat into private buffers that are then summed.
    pub fn splat_into<V>(
        &self,
        values: &mut [f32],
        c: usize,
        groups: Option<&[Vec<Range<usize>>]>,
        vals: V,
    ) where
        V: Fn(usize, &mut [f32]) + Sync,
    {
        assert_eq!(values.len(), self.m * c);
        assert!(c <= 16, "at most 16 values per point");
        values.par_iter_mut().for_each(|x| *x = 0.0);
        let ptr = SharedMut(values.as_mut_ptr());
        let run = |range: Range<usize>| {
            let p = ptr;
            let mut tmp = [0f32; 16];
            for i in range {
                vals(i, &mut tmp[..c]);
                let (v, b) = self.vertices(i);
                for r in 0..=D {
                    let o = v[r] as usize * c;
                    let w = b[r];
                    for k in 0..c {
                        // SAFETY: o + k < m * c; ranges running concurrently
                        // touch disjoint vertices (contract of `groups`).
                        unsafe { *p.0.add(o + k) += w * tmp[k] };
                    }
                }
            }
        };
        let threads = rayon::current_num_threads();
        match groups {
            None => run(0..self.n),
            // small lattice: private buffers per task, summed (no ordering constraint)
            Some(_) if threads > 1 && self.m * threads * 8 <= self.n => {
                let chunk = self.n.div_ceil(threads * 4).max(1);
                let acc = (0..self.n.div_ceil(chunk))
                    .into_par_iter()
                    .fold(
                        || vec![0f32; self.m * c],
                        |mut buf, t| {
                            let mut tmp = [0f32; 16];
                            for i in t * chunk..((t + 1) * chunk).min(self.n) {
                                vals(i, &mut tmp[..c]);
                                let (v, b) = self.vertices(i);
                                for r in 0..=D {
                                    let o = v[r] as usize * c;
                                    for k in 0..c {
                                        buf[o + k] += b[r] * tmp[k];
                                    }
                                }
                            }
                            buf
                        },
                    )
                    .reduce_with(|mut a, b| {
                        a.iter_mut().zip(&b).for_each(|(x, y)| *x += *y);
                        a
                    });
                if let Some(a) = acc {
                    values.copy_from_slice(&a);
                }
            }
            Some(gs) => {
                for g in gs {
                    g.par_iter().for_each(|r| run(r.clone()));
                }
            }
        }
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

    /// Vertices and barycentric weights of point `i` (for a slice followed
    /// by a splat of the same point).
    #[inline(always)]
    pub fn locate(&self, i: usize) -> Located {
        let (v, b) = self.vertices(i);
        Located { v, b }
    }

    /// Slices point `i` from a blurred vertex buffer: `out = alpha * sum_r w_r v_r`.
    #[inline(always)]
    pub fn slice_point(&self, i: usize, values: &[f32], c: usize, out: &mut [f32]) {
        self.slice_located(&self.locate(i), values, c, out);
    }

    /// [`Self::slice_point`] for an already located point.
    #[inline(always)]
    pub fn slice_located(&self, loc: &Located, values: &[f32], c: usize, out: &mut [f32]) {
        let alpha = 1.0f32 / (1.0 + 2f32.powi(-(D as i32)));
        out[..c].iter_mut().for_each(|x| *x = 0.0);
        for r in 0..=D {
            let o = loc.v[r] as usize * c;
            if c <= 2 {
                // densecrf's scalar path: (w * v) * alpha
                for k in 0..c {
                    out[k] += loc.b[r] * values[o + k] * alpha;
                }
            } else {
                let w = loc.b[r] * alpha;
                for k in 0..c {
                    out[k] += w * values[o + k];
                }
            }
        }
    }

    /// Adds `vals` (c values) of a located point into a vertex buffer.
    #[inline(always)]
    pub fn splat_located(&self, loc: &Located, buf: &mut [f32], c: usize, vals: &[f32]) {
        for r in 0..=D {
            let o = loc.v[r] as usize * c;
            for k in 0..c {
                buf[o + k] += loc.b[r] * vals[k];
            }
        }
    }

    /// Full filter: splat (serial), blur, slice. `input` and the result are
    /// `n x c` row-major.
    pub fn filter(&self, input: &[f32], c: usize) -> Vec<f32> {
        assert_eq!(input.len(), self.n * c);
        let mut vals = self.new_values(c);
        self.splat_into(&mut vals, c, None, |i, o| {
            o.copy_from_slice(&input[i * c..(i + 1) * c])
        });
        self.blur(&mut vals, c);
        let mut out = vec![0f32; self.n * c];
        out.par_chunks_mut(c * 1024)
            .enumerate()
            .for_each(|(ci, ch)| {
                for (o, oc) in ch.chunks_exact_mut(c).enumerate() {
                    self.slice_point(ci * 1024 + o, &vals, c, oc);
                }
            });
        out
    }
}

/// Filters `values` (`n x c`, row-major) with the permutohedral Gaussian
/// filter over `features` (`n x d`, row-major, in units of the standard
/// deviation), `d` in 1..=4. Returns `n x c` (including the `alpha` scale and
/// the `i = j` term, as densecrf).
pub fn permutohedral_filter(features: &[f32], d: usize, values: &[f32], c: usize) -> Vec<f32> {
    let n = values.len() / c.max(1);
    assert_eq!(features.len(), n * d);
    fn run<const D: usize>(features: &[f32], n: usize, values: &[f32], c: usize) -> Vec<f32> {
        let lat = Lattice::<D, _>::new(n, |i: usize| {
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
