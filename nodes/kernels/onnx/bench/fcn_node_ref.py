#!/usr/bin/env python3
"""Reference for the `fcn` node benchmark: what the node does, in Python, on the same slices.

usage: python fcn_node_ref.py MODEL EQ.nii(.gz) [--batch 4] [--threads 2]
Per batch: cv2 INTER_LINEAR resize of each slice to the model size, onnxruntime (CPU), resize of
each class back to the slice grid. Needs nibabel, cv2 (.venv-oracles) and onnxruntime (.venv):
run with the oracle python and PYTHONPATH=.venv/lib/python3.X/site-packages. Prints one JSON line.
"""
import argparse
import json
import time

import cv2
import nibabel as nib
import numpy as np
import onnxruntime as ort

ap = argparse.ArgumentParser()
ap.add_argument("model"); ap.add_argument("volume")
ap.add_argument("--batch", type=int, default=4); ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
vol = np.asarray(nib.load(a.volume).dataobj, dtype=np.float32)  # (i, j, k)
slices = [np.ascontiguousarray(vol[:, :, k].T) for k in range(vol.shape[2])]  # (j, i)
so = ort.SessionOptions()
so.intra_op_num_threads = a.threads
sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
meta = sess.get_modelmeta().custom_metadata_map
h, w = (int(x) for x in meta["voxflow.input_size"].split(","))
assert int(meta["voxflow.padding"]) == 0, "padding not handled here"
t0 = time.perf_counter()
checksum = 0.0
for s in range(0, len(slices), a.batch):
    chunk = slices[s:s + a.batch]
    x = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in chunk])[:, None]
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x})
    for c, p in zip(chunk, y):
        back = [cv2.resize(p[ch], (c.shape[1], c.shape[0]), interpolation=cv2.INTER_LINEAR) for ch in range(p.shape[0])]
        checksum += float(back[1].astype(np.float64).sum())
run_s = time.perf_counter() - t0
print(json.dumps({"impl": "python ort + cv2", "slices": len(slices), "slice": list(slices[0].shape),
                  "model_size": [h, w], "batch": a.batch, "threads": a.threads, "run_s": round(run_s, 3),
                  "slices_per_s": round(len(slices) / run_s, 2), "class1_sum": round(checksum, 1)}))
