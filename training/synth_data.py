"""Training data with synthetic tumours (training/synth_tumor.py) drawn into healthy host livers
(prepare.py --hosts): a fresh draw gives the lesion network's liver ROIs (cut like crop_resample,
as prepare.py --roi --roi-input window does) with the tumours as lesion. train.py calls `draw`
every `synth.every_epochs` epochs (config section `synth:`)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prepare import HELD_OUT_HEALTHY, close_slices, resize_image, roi_crop, to_u8  # noqa: E402
from synth_tumor import Host, synthesize  # noqa: E402

WINDOW = (-100.0, 400.0)  # ct_preprocess.yaml's window: the lesion network's input in [0, 1]


class HostSet:
    """The host livers of a `synth:` config section, each a `Host` over its slab of liver slices."""

    def __init__(self, folder, cases, synth_cfg):
        bad = [c for c in cases if c in HELD_OUT_HEALTHY]
        if bad:
            sys.exit(f"train: synth hosts {bad} are held-out healthy livers, kept out of all synthesis")
        self.cases, self.hosts, self.slabs, self.k0 = list(cases), [], [], []
        for case in cases:
            path = os.path.join(folder, f"{case}.npz")
            if not os.path.exists(path):
                sys.exit(f"train: {path} missing: run training/prepare.py --hosts --cases {case}")
            z = np.load(path)
            hu, liver = z["hu"].astype(np.float32), z["liver"].astype(bool)
            self.slabs.append((hu, liver))
            self.k0.append(int(z["k0"]))
            self.hosts.append(Host(hu, liver, z["spacing"], synth_cfg))
        self.cfg = synth_cfg


def windowed(hu):
    return np.clip((hu - WINDOW[0]) / (WINDOW[1] - WINDOW[0]), 0.0, 1.0).astype(np.float32)


def draw_volumes(hosts, rng):
    """One draw over every host: (case, windowed slab [0, 1], label slab 0/1/2, tumours) each."""
    out = []
    for case, host, (hu, liver) in zip(hosts.cases, hosts.hosts, hosts.slabs):
        syn, lab, tumours = synthesize(host, hosts.cfg, rng)
        full_hu = hu.copy()
        full_hu[host.box] = syn
        full_lab = liver.astype(np.uint8)
        full_lab[host.box] = lab
        out.append((case, windowed(full_hu), full_lab, tumours))
    return out


def draw_rois(hosts, rng, size, min_box=60, close_mm=0.0):
    """Liver ROIs of one fresh draw: (img uint8 [N, H, W], lab uint8 (1 = tumour), host index per
    ROI, each host's liver median in [0, 1] (over its mask including the tumours, as
    crop_resample measures it; train.py moves it to a model's liver level), number of tumours).
    With `close_mm` the mask is the liver closed per slice, as prepare.py --roi-close-mm."""
    imgs, labs, case_of, medians, n_tumours = [], [], [], [], 0
    for ci, (case, w, lab, tumours) in enumerate(draw_volumes(hosts, rng)):
        n_tumours += len(tumours)
        liver = lab >= 1
        if close_mm:
            liver = close_slices(liver, close_mm, tuple(hosts.hosts[ci].spacing[1:]))
        medians.append(float(np.median(w[liver])))
        for k in range(w.shape[0]):
            r = roi_crop(w[k], liver[k], size, min_box)
            if r is None:
                continue
            crop, (j0, j1, i0, i1) = r
            imgs.append(to_u8(crop))
            # = prepare.resize_label with 2 classes (argmax of the resized one-hot, ties to 0).
            labs.append((resize_image((lab[k, j0:j1, i0:i1] == 2)[None], size)[0] > 0.5).astype(np.uint8))
            case_of.append(ci)
    return np.array(imgs), np.array(labs), np.array(case_of), medians, n_tumours


def equalize_slice(a, lo, hi, bins):
    """voxflow's `equalize` of one slice (nodes/src/preprocess/equalize.rs): the empirical CDF
    over `bins` equal bins of [lo, hi], linear between bin edges, in float32."""
    a = np.asarray(a, dtype=np.float32)
    lo, hi = np.float32(lo), np.float32(hi)
    scale = np.float32(bins) / (hi - lo)
    t_raw = (a - lo) * scale
    b_hist = np.clip(np.trunc(t_raw), 0, bins - 1).astype(np.int64)
    cdf = np.concatenate([[0.0], np.cumsum(np.bincount(b_hist.ravel(), minlength=bins))]).astype(np.float64)
    cdf = (cdf / np.float32(a.size)).astype(np.float32)
    t = np.clip(t_raw, 0, bins).astype(np.float32)
    b = np.minimum(t.astype(np.int64), bins - 1)
    f = t - b.astype(np.float32)
    return cdf[b] + f * (cdf[b + 1] - cdf[b])


def draw_liver_slices(hosts, rng, size):
    """Whole slices of the liver network's input for one fresh draw: per host, (index of its
    first liver slice in the volume, uint8 slices [K, H, W] of its liver slab), each slice
    windowed and equalised as graphs/ct_preprocess.yaml does (per slice, so the tumours count in
    the histogram) and resized like the fcn node; and the number of tumours. The liver label is
    unchanged: tumour voxels stay liver."""
    out, n_tumours = [], 0
    for case, host, (hu, liver) in zip(hosts.cases, hosts.hosts, hosts.slabs):
        syn, _, tumours = synthesize(host, hosts.cfg, rng)
        n_tumours += len(tumours)
        full = hu.copy()
        full[host.box] = syn
        full = np.clip(full, WINDOW[0], WINDOW[1])
        eq = np.stack([equalize_slice(s, WINDOW[0], WINDOW[1], 256) for s in full])
        out.append((hosts.k0[len(out)], to_u8(resize_image(eq, size))))
    return out, n_tumours
