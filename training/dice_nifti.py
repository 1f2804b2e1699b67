#!/usr/bin/env python3
"""Liver Dice (label >= 1) between a voxflow output label volume and a ground-truth label.

  .venv-train/bin/python training/dice_nifti.py PRED.nii.gz REF.nii.gz
"""
import sys

import nibabel as nib
import numpy as np

pred = np.asanyarray(nib.load(sys.argv[1]).dataobj) >= 1
ref = np.asanyarray(nib.load(sys.argv[2]).dataobj) >= 1
if pred.shape != ref.shape:
    sys.exit(f"dice_nifti: shapes differ: {pred.shape} vs {ref.shape}")
print(f"Dice {2.0 * np.logical_and(pred, ref).sum() / max(1, pred.sum() + ref.sum()):.4f}  "
      f"(pred {int(pred.sum())} voxels, ref {int(ref.sum())})")
