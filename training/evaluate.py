#!/usr/bin/env python3
"""Liver Dice of an exported ONNX model on held-out volumes at their native resolution, the way
the fcn node runs it: the voxflow-preprocessed volume (.cache/train/pre/CASE.nii.gz, written by
prepare.py), each slice (between its neighbours for a model with voxflow.context_slices) resized
bilinearly to the model input, onnxruntime, probabilities resized back bilinearly
(align_corners=False), foreground = probability > 0.5; Dice also after keeping the largest
26-connected component (as crop_resample does by default).

  .venv-train/bin/python training/evaluate.py models/ct_liver.onnx btcv0008 btcv0022 btcv0025
"""
import argparse
import os
import sys
import time

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prepare import ROOT, case_files, load_kji  # noqa: E402
from train import neighbour_indices  # noqa: E402


def dice(a, b):
    s = a.sum() + b.sum()
    return 2.0 * np.logical_and(a, b).sum() / s if s else 1.0


def largest_component(m):
    lab, n = ndimage.label(m, structure=np.ones((3, 3, 3)))
    if n == 0:
        return m
    sizes = np.bincount(lab.ravel())[1:]
    return lab == (1 + int(np.argmax(sizes)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("cases", nargs="+")
    ap.add_argument("--data", default=os.environ.get("VOXFLOW_DATA", os.path.join(ROOT, "..", "shared", "data")))
    ap.add_argument("--cache", default=os.path.join(ROOT, ".cache", "train"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    h, w = (int(v) for v in meta["voxflow.input_size"].split(","))
    r = int(meta.get("voxflow.context_slices", "0"))
    rows = []
    for case in a.cases:
        pre = os.path.join(a.cache, "pre", f"{case}.nii.gz")
        if not os.path.exists(pre):
            sys.exit(f"evaluate: {pre} missing: run training/prepare.py --cases {case}")
        img = load_kji(pre).astype(np.float32)
        ref = load_kji(case_files(a.data, case)[1]) >= 1
        t0 = time.time()
        prob = np.zeros(img.shape, np.float32)
        for s in range(0, img.shape[0], 8):
            idx = neighbour_indices(np.arange(s, min(s + 8, img.shape[0])), r, 0, img.shape[0] - 1)
            x = F.interpolate(torch.from_numpy(img[idx]), size=(h, w), mode="bilinear", align_corners=False)
            (p,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
            back = F.interpolate(torch.from_numpy(p[:, 1:2]), size=img.shape[1:], mode="bilinear", align_corners=False)
            prob[s:s + 8] = back[:, 0].numpy()
        secs = time.time() - t0
        m = prob > 0.5
        d, dl = dice(m, ref), dice(largest_component(m), ref)
        rows.append((case, d, dl, img.shape[0], secs))
        print(f"{case}\tDice {d:.4f}\tDice (largest component) {dl:.4f}\t{img.shape[0]} slices in {secs:.1f} s", flush=True)
    print(f"mean\tDice {np.mean([r[1] for r in rows]):.4f}\tDice (largest component) {np.mean([r[2] for r in rows]):.4f}")


if __name__ == "__main__":
    main()
