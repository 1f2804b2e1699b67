#!/usr/bin/env python3
"""How much of the truth lesion lies inside a predicted liver mask (issue 17 item 2): the share of
truth lesion voxels (label 2) inside the largest 26-connected component of the predicted liver
(label >= 1), as `crop_resample` takes it, and inside that mask closed per slice by each
--close-mm (dilation then erosion by a disc of that radius, as the node's `close_mm`).

  .venv-train/bin/python training/tumour_coverage.py LIVER_PRED.nii.gz TRUTH.nii.gz --close-mm 20
"""
import argparse
import os
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prepare import close_slices  # noqa: E402  (the node's close_mm rule, on (k, j, i) arrays)


def largest_component(mask):
    lab, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return mask
    return lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pred")
    ap.add_argument("truth")
    ap.add_argument("--close-mm", nargs="*", type=float, default=[20.0])
    a = ap.parse_args()
    p = nib.load(a.pred)
    liver = largest_component(np.asarray(p.dataobj) >= 1)
    lesion = np.asarray(nib.load(a.truth).dataobj) == 2
    if liver.shape != lesion.shape:
        raise SystemExit(f"tumour_coverage: {a.pred} {liver.shape} and {a.truth} {lesion.shape} differ in shape")
    n = lesion.sum()
    print(f"lesion voxels {n}; inside the liver mask {100 * (liver & lesion).sum() / n:.1f} %")
    for r in a.close_mm:
        zooms = p.header.get_zooms()
        # NIfTI (x, y, z) -> voxflow's (k, j, i) and back.
        c = close_slices(liver.transpose(2, 1, 0), r, (zooms[1], zooms[0])).transpose(2, 1, 0)
        print(f"closed {r:g} mm: {100 * (c & lesion).sum() / n:.1f} % (mask area +{100 * (c.sum() / liver.sum() - 1):.1f} %)")


if __name__ == "__main__":
    main()
