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
synthetic volumes (rounded to 4 places; ties to the lower threshold, then the smaller volume)
among the pairs whose mean healthy lesion volume is <= --healthy-max-ml. The detection counts
(issue 17's: tumours >= 1 mL found, predicted components >= 0.5 mL touching one) are printed
beside it.
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
THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
MIN_MM3 = [0, 100, 250, 500, 1000, 2000]
PRED_MIN_ML = 0.5    # issue 17's detection counts: predicted components of >= 0.5 mL ...
TRUTH_MIN_ML = 1.0   # ... and truth lesions of >= 1 mL


def extract(prob_path, out_path):
    img = nib.load(prob_path)
    p = np.asarray(img.dataobj, dtype=np.float32)
    if p.ndim != 4 or p.shape[3] != 3:
        sys.exit(f"lesion_sweep: {prob_path} has shape {p.shape}, not x, y, z, 3 classes")
    np.savez_compressed(out_path, q=np.round(p[..., 2] * 255).astype(np.uint8),
                        lab=np.argmax(p, axis=3).astype(np.uint8), zooms=np.array(img.header.get_zooms()[:3]))


def score(npz, truth):
    """{(t, v): (lesion Dice, truth lesions found, truth lesions, true components, components,
    lesion mL)}; components >= PRED_MIN_ML, truth lesions >= TRUTH_MIN_ML (issue 17's counts).
    Without truth (a healthy liver) only the lesion mL counts."""
    d = np.load(npz)
    q, liver = d["q"], d["lab"] >= 1
    zooms = tuple(float(z) for z in d["zooms"])
    ml = float(np.prod(zooms)) / 1000
    t_mask = truth if truth is not None else np.zeros(q.shape, bool)
    tlab, tn = ndimage.label(t_mask, structure=CONN26)
    big_truth = np.bincount(tlab.ravel(), minlength=tn + 1) * ml >= TRUTH_MIN_ML
    big_truth[0] = False
    out = {}
    for t in THRESHOLDS:
        comp, n = ndimage.label(liver & (q > round(t * 255)), structure=CONN26)
        vox = np.bincount(comp.ravel(), minlength=n + 1)
        inter = np.bincount(comp[t_mask], minlength=n + 1)
        hit = comp[t_mask] > 0
        pairs = set(zip(comp[t_mask][hit].tolist(), tlab[t_mask][hit].tolist()))
        for v in MIN_MM3:
            keep = vox * ml * 1000 >= v
            keep[0] = False
            big = keep & (vox * ml >= PRED_MIN_ML)
            found = len({tl for pl, tl in pairs if big[pl] and big_truth[tl]})
            s = vox[keep].sum() + t_mask.sum()
            dice = 2 * inter[keep].sum() / s if s else 1.0
            out[(t, v)] = (dice, found, int(big_truth.sum()), int((big & (inter > 0)).sum()),
                           int(big.sum()), vox[keep].sum() * ml)
    return out


def sweep(folder, truth_dir, healthy_max_ml):
    dice, healthy, counts = {}, {}, {}
    files = sorted(glob.glob(os.path.join(folder, "*.npz")))
    if not files:
        sys.exit(f"lesion_sweep: no .npz in {folder}")
    for f in files:
        cid = os.path.basename(f)[:-4].split("_", 1)[1]
        tp = os.path.join(truth_dir, f"{cid}_label.nii.gz")
        synthetic = os.path.exists(tp)
        truth = np.asarray(nib.load(tp).dataobj) == 2 if synthetic else None
        for k, r in score(f, truth).items():
            if synthetic:
                dice.setdefault(k, []).append(r[0])
                counts[k] = counts.get(k, np.zeros(4, int)) + np.array(r[1:5])
            else:
                healthy.setdefault(k, []).append(r[5])
        print(f"scored {os.path.basename(f)}", file=sys.stderr, flush=True)
    if not dice or not healthy:
        sys.exit("lesion_sweep: needs both synthetic-tumour volumes and healthy livers")
    k0 = next(iter(dice))
    print(f"{len(dice[k0])} synthetic-tumour volumes, {len(healthy[k0])} healthy livers")
    print("lesion_threshold,min_lesion_mm3,synthetic_dice,found,tumours,true_components,"
          "components,healthy_ml_mean,healthy_ml_each")
    rows = []
    for k in dice:
        f, n, tc, c = counts[k]
        rows.append((round(float(np.mean(dice[k])), 4), -k[0], -k[1], float(np.mean(healthy[k])), k))
    rows.sort(reverse=True)
    for d, _, _, h, k in rows:
        f, n, tc, c = counts[k]
        print(f"{k[0]},{k[1]},{d:.4f},{f},{n},{tc},{c},{h:.2f}," + " ".join(f"{x:.1f}" for x in healthy[k]))
    ok = [r for r in rows if r[3] <= healthy_max_ml]
    if not ok:
        sys.exit(f"lesion_sweep: no candidate keeps healthy livers under {healthy_max_ml} mL")
    d, _, _, h, (t, v) = ok[0]
    f, n, tc, c = counts[(t, v)]
    print(f"CHOSEN lesion_threshold {t}, min_lesion_mm3 {v}: synthetic Dice {d:.4f}, {f} of {n} tumours found, "
          f"{tc} of {c} components true, healthy {h:.2f} mL")


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
