#!/usr/bin/env python3
"""Chooses the CT graph's `lesion_threshold` and `min_lesion_mm3` on validation volumes (issue 17
item 4; scripts/lesion_validation.sh runs it). Two steps:

  extract PROB.nii OUT.npz   the cascade's 3-class probabilities (the graph's `merge`, written by
                             write_volume as x, y, z, class) -> lesion probability (uint8, x255)
                             and the argmax label, compact
  sweep DIR TRUTH_DIR        every DIR/FOLD_ID.npz scored per candidate pair: an ID with a
                             TRUTH_DIR/ID_label.nii.gz is a synthetic-tumour volume (lesion Dice),
                             one without is a healthy liver (predicted lesion mL)

The candidate (t, v) labels lesion where the liver mask (argmax >= 1) has lesion probability > t,
then drops 26-connected lesion components under v mm3, as `paste_back` (`lesion_threshold`) and
`drop_small_components` do in the graph. The rule: the highest mean lesion Dice over the
synthetic volumes among the pairs whose mean healthy lesion volume is <= --healthy-max-ml.
"""
import argparse
import glob
import os
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lesion_detection import CONN26  # noqa: E402  (the detection counts' 26-connectivity)
THRESHOLDS = [0.5, 0.6, 0.7, 0.8, 0.9]
MIN_MM3 = [0, 100, 250, 500, 1000, 2000]


def extract(prob_path, out_path):
    img = nib.load(prob_path)
    p = np.asarray(img.dataobj, dtype=np.float32)
    if p.ndim != 4 or p.shape[3] != 3:
        sys.exit(f"lesion_sweep: {prob_path} has shape {p.shape}, not x, y, z, 3 classes")
    np.savez_compressed(out_path, q=np.round(p[..., 2] * 255).astype(np.uint8),
                        lab=np.argmax(p, axis=3).astype(np.uint8), zooms=np.array(img.header.get_zooms()[:3]))


def score(npz, truth):
    """{(t, v): Dice against truth, or lesion mL when truth is None}."""
    d = np.load(npz)
    q, liver, mm3 = d["q"], d["lab"] >= 1, float(np.prod(d["zooms"]))
    out = {}
    for t in THRESHOLDS:
        comp, n = ndimage.label(liver & (q > round(t * 255)), structure=CONN26)
        size = np.bincount(comp.ravel(), minlength=n + 1) * mm3
        for v in MIN_MM3:
            keep = size >= v
            keep[0] = False
            pred = keep[comp]
            if truth is None:
                out[(t, v)] = pred.sum() * mm3 / 1000
            else:
                s = pred.sum() + truth.sum()
                out[(t, v)] = 2 * (pred & truth).sum() / s if s else 1.0
    return out


def sweep(folder, truth_dir, healthy_max_ml):
    dice, healthy = {}, {}
    files = sorted(glob.glob(os.path.join(folder, "*.npz")))
    if not files:
        sys.exit(f"lesion_sweep: no .npz in {folder}")
    for f in files:
        cid = os.path.basename(f)[:-4].split("_", 1)[1]
        tp = os.path.join(truth_dir, f"{cid}_label.nii.gz")
        truth = np.asarray(nib.load(tp).dataobj) == 2 if os.path.exists(tp) else None
        for k, x in score(f, truth).items():
            (healthy if truth is None else dice).setdefault(k, []).append(x)
    if not dice or not healthy:
        sys.exit("lesion_sweep: needs both synthetic-tumour volumes and healthy livers")
    print(f"{len(dice[(0.5, 0)])} synthetic-tumour volumes, {len(healthy[(0.5, 0)])} healthy livers")
    print("lesion_threshold,min_lesion_mm3,synthetic_dice,healthy_ml_mean,healthy_ml_each")
    rows = sorted(((np.mean(dice[k]), np.mean(healthy[k]), k) for k in dice), reverse=True)
    for d, h, (t, v) in rows:
        print(f"{t},{v},{d:.4f},{h:.2f}," + " ".join(f"{x:.1f}" for x in healthy[(t, v)]))
    ok = [r for r in rows if r[1] <= healthy_max_ml]
    if not ok:
        sys.exit(f"lesion_sweep: no candidate keeps healthy livers under {healthy_max_ml} mL")
    d, h, (t, v) = ok[0]
    print(f"CHOSEN lesion_threshold {t}, min_lesion_mm3 {v}: synthetic Dice {d:.4f}, healthy {h:.2f} mL")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract")
    e.add_argument("prob")
    e.add_argument("out")
    s = sub.add_parser("sweep")
    s.add_argument("folder")
    s.add_argument("truth_dir")
    s.add_argument("--healthy-max-ml", type=float, default=5.0)
    a = ap.parse_args()
    if a.cmd == "extract":
        extract(a.prob, a.out)
    else:
        sweep(a.folder, a.truth_dir, a.healthy_max_ml)


if __name__ == "__main__":
    main()
