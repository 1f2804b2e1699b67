#!/usr/bin/env python3
"""Convert NIfTI inputs of crf3d.py to raw little-endian arrays in voxflow order
(k, j, i[, c]) for examples/bench_crf.rs. Writes only where told (use /tmp).

usage: to_raw.py inputs IMAGE.nii.gz PROB.nii.gz OUTPREFIX [--hu-window -100 400]
         -> OUTPREFIX.image.f32 (clipped to the window, as crf3d.py), OUTPREFIX.prob.f32,
            OUTPREFIX.json (shape_kji, spacing_kji)
       to_raw.py labels LABELS.nii.gz OUT.u8
"""
import json, sys
import numpy as np
import nibabel as nib

if sys.argv[1] == "inputs":
    im = nib.load(sys.argv[2]); pr = nib.load(sys.argv[3]); pre = sys.argv[4]
    lo, hi = (float(sys.argv[6]), float(sys.argv[7])) if "--hu-window" in sys.argv else (-100.0, 400.0)
    img = np.clip(np.asanyarray(im.dataobj).astype(np.float32), lo, hi)
    np.ascontiguousarray(img.transpose(2, 1, 0)).tofile(pre + ".image.f32")
    del img
    prob = np.asanyarray(pr.dataobj).astype(np.float32)
    np.ascontiguousarray(prob.transpose(2, 1, 0, 3)).tofile(pre + ".prob.f32")
    sp = [float(z) for z in im.header.get_zooms()[:3]]
    json.dump({"shape_kji": list(prob.shape[:3])[::-1], "classes": prob.shape[3], "spacing_kji": sp[::-1]},
              open(pre + ".json", "w"))
elif sys.argv[1] == "labels":
    lab = np.asanyarray(nib.load(sys.argv[2]).dataobj).astype(np.uint8)
    np.ascontiguousarray(lab.transpose(2, 1, 0)).tofile(sys.argv[3])
else:
    sys.exit(__doc__)
