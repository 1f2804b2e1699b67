#!/usr/bin/env python3
"""Synthetic liver tumours in real CT volumes, after the recipe of Hu et al., "Label-Free Liver
Tumor Segmentation" (CVPR 2023): tumours drawn into healthy livers so that a lesion network can
train on more tumours than two patients hold.

Per tumour (every length in mm, every intensity in HU; parameters: configs/synth_tumor.yaml):
- size class (tiny < 5, small 5-10, medium 10-20, large 20-40 mm radius) and its radius;
- location: a liver voxel away from vessels (Gaussian-smoothed CT above the liver median + a
  threshold) and away from the liver's edge (tiny and small tumours lie fully inside), and away
  from the tumours already drawn;
- shape: an ellipsoid (random axes and 3D rotation), elastically deformed, cut to the liver;
- mass effect: the liver tissue around it is pushed outward (radial warp fading to 0);
- texture: Gaussian-filtered uniform noise around a mean intensity relative to the liver's median
  (mostly hypodense), plus CT noise at the liver's own noise level, blended in through the blurred
  tumour mask; optionally a rim at its edge.
Labels: 0 background, 1 liver, 2 tumour; a tumour voxel is still a liver voxel (the liver mask
is never changed). Everything is deterministic from the numpy Generator passed in, and works on a
crop around each tumour only (a `Host` caches the per-liver distance maps).

  .venv-train/bin/python training/synth_tumor.py --bench btcv0001 btcv0002   # tumours per second
"""
import argparse
import os
import sys
import time

import numpy as np
from scipy import ndimage

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DEFAULT_CONFIG = os.path.join(ROOT, "training", "configs", "synth_tumor.yaml")
CLASSES = ("tiny", "small", "medium", "large")
KEYS = ("tumours_per_liver", "healthy_probability", "size_classes", "edge_clearance", "edge_margin_mm",
        "vessel_smooth_mm", "vessel_above_liver_hu", "vessel_clearance", "vessel_clearance_max_mm",
        "tumour_gap", "location_tries", "ellipticity", "elastic_amplitude", "elastic_sigma_mm",
        "hypodense_probability", "hypodense_delta_hu", "hyperdense_delta_hu", "texture_std_hu",
        "texture_sigma_mm", "edge_sigma_mm", "rim_probability", "rim_delta_hu", "rim_width_mm",
        "mass_effect", "mass_reach")


def load_config(path=DEFAULT_CONFIG):
    """The synthesis config (YAML); refuses a missing or unknown key, naming the file."""
    import yaml
    with open(path) as f:
        cfg = yaml.safe_load(f)
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: not a mapping of synthesis parameters")
    missing = [k for k in KEYS if k not in cfg]
    unknown = [k for k in cfg if k not in KEYS]
    if missing or unknown:
        raise ValueError(f"{path}: missing keys {missing}, unknown keys {unknown}")
    if sorted(cfg["size_classes"]) != sorted(CLASSES) or sorted(cfg["edge_clearance"]) != sorted(CLASSES):
        raise ValueError(f"{path}: size_classes and edge_clearance need exactly {list(CLASSES)}")
    return cfg


def _sigma_vox(mm, spacing):
    return tuple(float(mm) / s for s in spacing)


class Host:
    """One liver to draw tumours into: HU and liver mask (any shape, axis order free but matching
    `spacing` in mm), with what every draw reuses: the liver's bounding box plus a margin, its
    median HU, noise level, distance to its edge and to its vessels (mm)."""

    noise_corr_mm = 0.7  # in-plane correlation of the CT noise drawn into tumours

    def __init__(self, hu, liver, spacing, cfg, margin_mm=10.0):
        hu = np.asarray(hu)
        liver = np.asarray(liver).astype(bool)
        if hu.shape != liver.shape or hu.ndim != 3:
            raise ValueError(f"Host: CT {hu.shape} and liver mask {liver.shape} must be one 3D grid")
        if not liver.any():
            raise ValueError("Host: the liver mask is empty")
        self.spacing = np.asarray(spacing, dtype=np.float64)
        if self.spacing.shape != (3,) or np.any(self.spacing <= 0):
            raise ValueError(f"Host: spacing {spacing} must be three positive mm values")
        self.shape = hu.shape
        nz = np.nonzero(liver)
        m = np.ceil(margin_mm / self.spacing).astype(int)
        lo = [max(0, int(a.min()) - mi) for a, mi in zip(nz, m)]
        hi = [min(n, int(a.max()) + 1 + mi) for a, n, mi in zip(nz, self.shape, m)]
        self.box = tuple(slice(a, b) for a, b in zip(lo, hi))
        self.hu = hu[self.box].astype(np.float32)
        self.liver = liver[self.box]
        self.median = float(np.median(self.hu[self.liver]))
        self.dist_edge = ndimage.distance_transform_edt(self.liver, sampling=self.spacing).astype(np.float32)
        smooth = ndimage.gaussian_filter(self.hu, _sigma_vox(cfg["vessel_smooth_mm"], self.spacing))
        self.vessel = self.liver & (smooth > self.median + cfg["vessel_above_liver_hu"])
        if self.vessel.any():
            self.dist_vessel = ndimage.distance_transform_edt(~self.vessel, sampling=self.spacing).astype(np.float32)
        else:
            self.dist_vessel = np.full(self.hu.shape, np.inf, dtype=np.float32)
        # Noise level: robust std of the high-pass CT over the parenchyma (liver minus 3 mm around
        # vessels and its outer 6 mm, where edges and partial volume would count as noise).
        resid = self.hu - ndimage.gaussian_filter(self.hu, _sigma_vox(2.0, self.spacing))
        paren = (self.dist_edge > 6.0) & (self.dist_vessel > 3.0)
        r = resid[paren if paren.sum() > 100 else self.liver]
        self.noise_std = float(1.4826 * np.median(np.abs(r - np.median(r))))


def _uniform(rng, lo_hi):
    lo, hi = lo_hi
    return float(rng.uniform(lo, hi))


def _rotation(rng):
    """A uniformly random 3D rotation (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _smooth_noise(rng, shape, sigma_vox):
    """Gaussian-filtered uniform noise, standardised to mean 0, std 1."""
    n = ndimage.gaussian_filter(rng.uniform(0.0, 1.0, size=shape).astype(np.float32), sigma_vox, mode="reflect")
    return (n - n.mean()) / max(float(n.std()), 1e-6)


def _elastic_field(rng, shape, spacing, sigma_mm):
    """Three smooth displacement components over `shape` (unitless, longest vector 1): uniform
    noise on a grid coarser by the field's own smoothness, smoothed, then interpolated up (fast)."""
    step = np.maximum(1, np.floor(sigma_mm / np.asarray(spacing))).astype(int)
    coarse = tuple(int(np.ceil(n / s)) + 1 for n, s in zip(shape, step))
    out = []
    for _ in range(3):
        c = ndimage.gaussian_filter(rng.uniform(-1.0, 1.0, size=coarse), 1.0, mode="reflect")
        f = ndimage.zoom(c, [n / cn for n, cn in zip(shape, coarse)], order=1, grid_mode=True, mode="nearest")
        out.append(f[:shape[0], :shape[1], :shape[2]])
    f = np.stack(out)
    return f / max(float(np.sqrt(np.sum(f * f, axis=0)).max()), 1e-9)


def _choose_centre(host, taken, r_max, r_mean, cls, cfg, rng):
    """A liver voxel index (in the host's crop) meeting the edge, vessel and spacing rules, or None."""
    need_edge = cfg["edge_clearance"][cls] * r_max
    if cls in ("tiny", "small"):
        need_edge += cfg["edge_margin_mm"]
    need_vessel = min(cfg["vessel_clearance"] * r_mean, cfg["vessel_clearance_max_mm"])
    ok = (host.dist_edge >= max(need_edge, 1e-3)) & (host.dist_vessel >= need_vessel)
    if taken:
        idx = np.nonzero(ok)
        if idx[0].size == 0:
            return None
        pts = np.stack(idx, axis=1) * host.spacing
        keep = np.ones(len(pts), dtype=bool)
        for c, r in taken:
            keep &= np.sum((pts - c * host.spacing) ** 2, axis=1) >= (cfg["tumour_gap"] * (r + r_max)) ** 2
        idx = tuple(a[keep] for a in idx)
    else:
        idx = np.nonzero(ok)
    if idx[0].size == 0:
        return None
    i = int(rng.integers(idx[0].size))
    return np.array([a[i] for a in idx])


def _draw_one(host, hu, label, taken, cls, cfg, rng):
    """Draws one tumour of class `cls` into `hu` / `label` (the host's crop, in place).
    Returns the tumour's description, or None when the liver has no room for it."""
    sp = host.spacing
    radius = _uniform(rng, cfg["size_classes"][cls]["radius_mm"])
    e = cfg["ellipticity"]
    axes0 = radius * rng.uniform(1 - e, 1 + e, size=3)
    centre = None
    for _ in range(cfg["location_tries"]):
        axes = axes0
        r_max, r_mean = float(axes.max()) * (1 + cfg["elastic_amplitude"]), float(axes.mean())
        centre = _choose_centre(host, taken, r_max, r_mean, cls, cfg, rng)
        if centre is not None:
            break
        axes0 = axes0 * 0.8
        radius *= 0.8
    if centre is None:
        return None
    r = float(axes.mean())
    rot = _rotation(rng)
    rot_t = rot.T.astype(np.float32)
    inv_axes = (1.0 / axes).astype(np.float32).reshape(3, 1)
    sp32 = sp.astype(np.float32).reshape(3, 1)

    # Mass effect, over the liver voxels within mass_reach x the radius: a voxel at
    # ellipsoid-normalised radius rho takes its tissue from rho0 < rho on the same ray.
    k = _uniform(rng, cfg["mass_effect"])
    half = np.ceil(cfg["mass_reach"] * r_max / sp).astype(int)
    lo = np.maximum(centre - half, 0)
    hi = np.minimum(centre + half + 1, hu.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    liver = host.liver[box]
    if k > 0:
        idx = np.nonzero(liver)
        p = (np.stack(idx).astype(np.float32) - (centre - lo).reshape(3, 1)) * sp32  # mm offsets
        rho = np.sqrt(np.sum((rot_t @ p * inv_axes) ** 2, axis=0))
        reach = cfg["mass_reach"]
        inside = rho <= 1
        rho0 = np.where(inside, rho * (1 - k) ** (1 / 3), np.cbrt(np.maximum(rho ** 3 - k, 0)))
        d = (rho - rho0) * np.where(inside, 1.0, np.clip((reach - rho) / (reach - 1), 0, 1))
        moving = d > 1e-3
        if moving.any():
            scale = (rho[moving] - d[moving]) / np.maximum(rho[moving], 1e-6)
            src = (centre - lo).reshape(3, 1) + p[:, moving] * scale / sp32
            sel = tuple(a[moving] for a in idx)
            crop = hu[box]
            crop[sel] = ndimage.map_coordinates(crop, src, order=1, mode="nearest")
            lab = label[box]  # earlier tumours move with their tissue
            moved = ndimage.map_coordinates((lab == 2).astype(np.uint8), src, order=0, mode="nearest")
            lab[sel] = np.where(moved > 0, 2, 1)

    # Shape, on the tumour's box (its largest reach plus the blur's): the ellipsoid in elastically
    # displaced coordinates (displacement at most elastic_amplitude x the radius), cut to the liver.
    edge = _uniform(rng, cfg["edge_sigma_mm"])
    th = np.ceil((r_max + 3 * max(cfg["edge_sigma_mm"][1], cfg["rim_width_mm"][1])) / sp).astype(int)
    tlo = np.maximum(centre - th, 0)
    thi = np.minimum(centre + th + 1, hu.shape)
    tb = tuple(slice(a, b) for a, b in zip(tlo, thi))
    tshape = tuple(int(n) for n in thi - tlo)
    p = (np.indices(tshape, dtype=np.float32).reshape(3, -1) - (centre - tlo).reshape(3, 1)) * sp32
    field = _elastic_field(rng, tshape, sp, cfg["elastic_sigma_mm"]).reshape(3, -1) * (cfg["elastic_amplitude"] * r)
    rho_d = np.sqrt(np.sum((rot_t @ (p + field.astype(np.float32)) * inv_axes) ** 2, axis=0)).reshape(tshape)
    liver_t = host.liver[tb]
    mask = (rho_d <= 1) & liver_t
    if not mask.any():
        return None

    # Texture, blended in through the blurred mask (inside the liver only).
    alpha = np.clip(ndimage.gaussian_filter(mask.astype(np.float32), _sigma_vox(edge, sp)), 0, 1) * liver_t
    hypo = rng.random() < cfg["hypodense_probability"]
    delta = _uniform(rng, cfg["hypodense_delta_hu"] if hypo else cfg["hyperdense_delta_hu"])
    tex = _smooth_noise(rng, tshape, _sigma_vox(_uniform(rng, cfg["texture_sigma_mm"]), sp)) * _uniform(rng, cfg["texture_std_hu"])
    # CT noise: white noise, correlated over about a voxel, scaled so that its high-pass part
    # (minus a 2 mm Gaussian low-pass, as measured on the host) matches the liver's.
    ct_noise = _smooth_noise(rng, tshape, _sigma_vox(host.noise_corr_mm, sp))
    hp = ct_noise - ndimage.gaussian_filter(ct_noise, _sigma_vox(2.0, sp))
    ct_noise *= host.noise_std / max(float(hp.std()), 1e-6)
    target = host.median + delta + tex + ct_noise
    sub = hu[tb]
    sub = (1 - alpha) * sub + alpha * target
    rim = None
    if rng.random() < cfg["rim_probability"]:
        width = _uniform(rng, cfg["rim_width_mm"])
        rim = _uniform(rng, cfg["rim_delta_hu"])
        dist_mm = (rho_d - 1.0) * r  # approximate distance to the surface
        sub = sub + rim * np.exp(-0.5 * (dist_mm / width) ** 2) * liver_t
    hu[tb] = sub
    label[tb][mask] = 2
    taken.append((centre, r_max))
    return {"class": cls, "radius_mm": radius, "axes_mm": axes.tolist(), "centre": centre.tolist(),
            "delta_hu": delta, "mass_effect": k, "rim_hu": rim, "voxels": int(mask.sum())}


def synthesize(host, cfg, rng, count=None):
    """Draws tumours into a copy of the host's liver. Returns (hu, label, tumours) on the host's
    liver box (`host.box` of the volume it was built from): hu float32, label uint8 (0, 1 liver, 2 tumour; tumour voxels lie in the liver
    mask), tumours a list of dicts. `count` overrides the drawn number of tumours (0: healthy)."""
    if count is None:
        if rng.random() < cfg["healthy_probability"]:
            count = 0
        else:
            w = np.asarray(cfg["tumours_per_liver"], dtype=np.float64)
            count = int(rng.choice(len(w), p=w / w.sum())) + 1
    hu = host.hu.copy()
    label = host.liver.astype(np.uint8)
    names = list(CLASSES)
    pc = np.array([cfg["size_classes"][c]["p"] for c in names], dtype=np.float64)
    taken, tumours = [], []
    # Largest first: the big ones need the room.
    order = sorted((names[int(rng.choice(4, p=pc / pc.sum()))] for _ in range(count)), key=names.index, reverse=True)
    for cls in order:
        t = _draw_one(host, hu, label, taken, cls, cfg, rng)
        if t is not None:
            tumours.append(t)
    return hu, label, tumours


def _bench(cases, cfg, data, seed, draws):
    import nibabel as nib
    rng = np.random.default_rng(seed)
    n_t, t_syn, t_host, cpu = 0, 0.0, 0.0, 0.0
    for case in cases:
        img = nib.load(os.path.join(data, f"{case}_ct.nii.gz"))
        hu = np.asarray(img.dataobj, dtype=np.float32)
        lab = np.asarray(nib.load(os.path.join(data, f"{case}_label.nii.gz")).dataobj)
        t0 = time.perf_counter()
        host = Host(hu, lab == 1, img.header.get_zooms()[:3], cfg)
        t_host += time.perf_counter() - t0
        for _ in range(draws):
            t0, c0 = time.perf_counter(), time.process_time()
            _, _, ts = synthesize(host, cfg, rng)
            t_syn += time.perf_counter() - t0
            cpu += time.process_time() - c0
            n_t += len(ts)
    print(f"{len(cases)} livers: host set-up {t_host / len(cases):.2f} s per liver (once); "
          f"{draws} draws each: {n_t} tumours in {t_syn:.1f} s = {n_t / t_syn:.1f} tumours/s, "
          f"{len(cases) * draws / t_syn:.2f} livers/s (CPU time of this process: {n_t / cpu:.1f} tumours per CPU-s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", nargs="+", metavar="CASE", required=True, help="cases of VOXFLOW_DATA (CASE_ct/label.nii.gz)")
    ap.add_argument("--config", default=DEFAULT_CONFIG)
    ap.add_argument("--data", default=os.environ.get("VOXFLOW_DATA", os.path.join(ROOT, "..", "shared", "data")))
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    try:
        cfg = load_config(a.config)
    except (OSError, ValueError) as e:
        sys.exit(f"synth_tumor: {e}")
    _bench(a.bench, cfg, a.data, a.seed, a.draws)


if __name__ == "__main__":
    main()
