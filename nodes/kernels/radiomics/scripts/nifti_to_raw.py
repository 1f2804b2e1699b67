#!/usr/bin/env python3
"""Convert IMAGE + LABEL NIfTI to raw inputs for examples/bench_radiomics.rs (write under /tmp only).

usage: nifti_to_raw.py IMAGE LABEL --label 2 OUTDIR
Reads with SimpleITK, as PyRadiomics does: array (k, j, i), spacing GetSpacing()[::-1].
Writes OUTDIR/image.f32 (little-endian float32, C order), OUTDIR/mask.u8 (1 = label),
OUTDIR/meta.json {"shape": [nk, nj, ni], "spacing": [dk, dj, di]}.
"""
import argparse, json, os
import numpy as np
import SimpleITK as sitk

ap = argparse.ArgumentParser()
ap.add_argument("image"); ap.add_argument("label"); ap.add_argument("outdir")
ap.add_argument("--label-value", type=int, default=2)
a = ap.parse_args()
img = sitk.ReadImage(a.image)
lab = sitk.ReadImage(a.label)
arr = sitk.GetArrayFromImage(img)
m = sitk.GetArrayFromImage(lab) == a.label_value
f = arr.astype("<f4")
if not np.array_equal(f.astype(arr.dtype), arr):
    raise SystemExit("image values are not exactly representable as float32")
os.makedirs(a.outdir, exist_ok=True)
f.tofile(os.path.join(a.outdir, "image.f32"))
m.astype("u1").tofile(os.path.join(a.outdir, "mask.u8"))
json.dump({"shape": list(arr.shape), "spacing": list(img.GetSpacing()[::-1]), "dtype": str(arr.dtype)},
          open(os.path.join(a.outdir, "meta.json"), "w"))
print(json.dumps({"shape": list(arr.shape), "voxels": int(m.sum()), "dtype": str(arr.dtype)}))
