#!/usr/bin/env python3
"""Lesion Dice and detection of predicted label volumes (0, 1 liver, 2 lesion) against truth, as
issue 17 counts them: 26-connected components; a truth lesion of >= --truth-min-ml is found when a
predicted component of >= --pred-min-ml touches it; such a predicted component is true when it
touches any truth lesion. With --drop-ml, each row also shows what `drop_small_components`
(class 2 -> 1, 26-connected) with that `min_volume_mm3` (given in mL) would give, so its value
can be chosen on a validation set. Without --drop-ml its counts are those `voxflow eval` prints
("Lesions of >= 1 mL: ...", the metrics kernel's `Detection::sized`).

  .venv-train/bin/python training/lesion_detection.py out/synth_val/manifest.csv --drop-ml 0 0.5 1 2
  .venv-train/bin/python training/lesion_detection.py PRED.nii.gz:TRUTH.nii.gz ...

A manifest is `voxflow eval`'s CSV (id,pred,truth; paths relative to it). A truth of `-` means a
healthy liver: only the predicted lesion volume is counted.
"""
import argparse
import csv
import os
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

CONN26 = np.ones((3, 3, 3), dtype=bool)


def cases(args):
    for a in args:
        if a.endswith(".csv"):
            base = os.path.dirname(os.path.abspath(a))
            with open(a) as f:
                for r in csv.DictReader(f):
                    t = r["truth"]
                    yield r["id"], os.path.join(base, r["pred"]), (t if t == "-" else os.path.join(base, t))
        else:
            p, t = a.split(":")
            yield os.path.basename(p), p, t


def components(mask):
    lab, n = ndimage.label(mask, structure=CONN26)
    return lab, np.bincount(lab.ravel(), minlength=n + 1)[1:]


def evaluate(pred, truth, ml_per_voxel, drop_ml, truth_min_ml, pred_min_ml):
    """Per drop threshold: (dice, found, big truth lesions, true big components, big components,
    predicted lesion mL)."""
    plab, psize = components(pred == 2)
    pml = psize * ml_per_voxel
    t = truth == 2 if truth is not None else np.zeros(pred.shape, bool)
    tlab, tsize = components(t)
    big_truth = tsize * ml_per_voxel >= truth_min_ml
    # Overlap of each predicted component with the truth, and which truth lesions it touches.
    both = (plab > 0) & t
    inter = np.bincount(plab[both], minlength=len(psize) + 1)[1:]
    pairs = set(zip(plab[both].tolist(), tlab[both].tolist()))
    rows = []
    for d in drop_ml:
        keep = pml >= d
        p_vox = psize[keep].sum()
        i_vox = inter[keep].sum()
        denom = p_vox + tsize.sum()
        dice = 2 * i_vox / denom if denom else 1.0
        big = keep & (pml >= pred_min_ml)
        found = {tl for pl, tl in pairs if big[pl - 1] and big_truth[tl - 1]}
        true_big = sum(1 for pl in np.nonzero(big)[0] + 1 if inter[pl - 1] > 0)
        rows.append((dice, len(found), int(big_truth.sum()), true_big, int(big.sum()), p_vox * ml_per_voxel))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="manifest.csv or PRED:TRUTH")
    ap.add_argument("--drop-ml", nargs="+", type=float, default=[0.0])
    ap.add_argument("--truth-min-ml", type=float, default=1.0)
    ap.add_argument("--pred-min-ml", type=float, default=0.5)
    a = ap.parse_args()
    totals = {d: np.zeros(6) for d in a.drop_ml}
    dices = {d: [] for d in a.drop_ml}
    print("id,drop_ml,lesion_dice,found,truth_lesions,true_components,components,lesion_ml")
    for cid, p, t in cases(a.inputs):
        for path in (p, t):
            if path != "-" and not os.path.isfile(path):
                sys.exit(f"lesion_detection: {path} does not exist")
        pimg = nib.load(p)
        pred = np.asarray(pimg.dataobj).astype(np.uint8)
        truth = None if t == "-" else np.asarray(nib.load(t).dataobj).astype(np.uint8)
        if truth is not None and truth.shape != pred.shape:
            sys.exit(f"lesion_detection: {p} {pred.shape} and {t} {truth.shape} differ in shape")
        ml = float(np.prod(pimg.header.get_zooms()[:3])) / 1000.0
        for d, r in zip(a.drop_ml, evaluate(pred, truth, ml, a.drop_ml, a.truth_min_ml, a.pred_min_ml)):
            print(f"{cid},{d},{r[0]:.4f},{r[1]},{r[2]},{r[3]},{r[4]},{r[5]:.2f}", flush=True)
            totals[d] += np.array(r)
            dices[d].append(r[0])
    for d in a.drop_ml:
        s = totals[d]
        print(f"ALL,{d},{np.mean(dices[d]):.4f},{int(s[1])},{int(s[2])},{int(s[3])},{int(s[4])},{s[5]:.2f}")


if __name__ == "__main__":
    main()
