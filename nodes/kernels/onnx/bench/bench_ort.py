#!/usr/bin/env python3
"""Python onnxruntime side of the benchmark (same loop as examples/bench_onnx.rs).

usage: .venv/bin/python bench_ort.py MODEL --input FILE.f32 [--batch 8] [--threads 2] [--slices 64]
Reflect-pads by voxflow.padding like FcnSession::run. Prints one JSON line.
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort

ap = argparse.ArgumentParser()
ap.add_argument("model"); ap.add_argument("--input", required=True)
ap.add_argument("--batch", type=int, default=8); ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--slices", type=int, default=64)
a = ap.parse_args()
t0 = time.perf_counter()
so = ort.SessionOptions()
so.intra_op_num_threads = a.threads
sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
load_s = time.perf_counter() - t0
meta = sess.get_modelmeta().custom_metadata_map
h, w = (int(x) for x in meta["voxflow.input_size"].split(","))
p = int(meta["voxflow.padding"])
pool = np.fromfile(a.input, "<f4").reshape(-1, 1, h, w)
have = pool.shape[0]


def batch(start, n):
    b = pool[[(start + i) % have for i in range(n)]]
    return np.pad(b, ((0, 0), (0, 0), (p, p), (p, p)), mode="reflect") if p else b


t1 = time.perf_counter()
sess.run(None, {"image": batch(0, min(a.batch, a.slices))})
warm = time.perf_counter() - t1
done, checksum = 0, 0.0
t2 = time.perf_counter()
while done < a.slices:
    n = min(a.batch, a.slices - done)
    (y,) = sess.run(None, {"image": batch(done, n)})
    checksum += float(y[:, 1].astype(np.float64).sum())  # class 1 (channels sum to 1)
    done += n
run_s = time.perf_counter() - t2
print(json.dumps({"impl": "python-ort", "model": a.model, "input_size": [h, w], "padding": p,
                  "batch": a.batch, "threads": a.threads, "slices": a.slices, "load_s": round(load_s, 3),
                  "warmup_s": round(warm, 3), "run_s": round(run_s, 3),
                  "slices_per_s": round(a.slices / run_s, 2), "checksum": round(checksum, 3)}))
