#!/usr/bin/env python3
"""Benchmark input: axial slices of a synthetic CT, HU window [-100, 400] scaled to [0, 1],
resized (cv2 INTER_LINEAR) to H x W, written as raw little-endian float32 [Z, H, W].

usage: .venv-oracles/bin/python prep_input.py CT.nii.gz H W OUT.f32 [--slices N]
Only for synthetic inputs (make_synthetic.py); write OUT under /tmp.
"""
import argparse

import cv2
import nibabel as nib
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("ct"); ap.add_argument("h", type=int); ap.add_argument("w", type=int); ap.add_argument("out")
ap.add_argument("--slices", type=int, default=64)
a = ap.parse_args()
v = np.asanyarray(nib.load(a.ct).dataobj).astype(np.float32)  # (x, y, z)
z = v.shape[2]
ks = np.linspace(0, z - 1, min(a.slices, z)).round().astype(int)
out = np.empty((len(ks), a.h, a.w), np.float32)
for n, k in enumerate(ks):
    s = (np.clip(v[:, :, k].T, -100, 400) + 100) / 500  # (j, i) = (rows, cols)
    out[n] = cv2.resize(s, (a.w, a.h), interpolation=cv2.INTER_LINEAR)
out.astype("<f4").tofile(a.out)
print(f"{a.out}: {out.shape}")
