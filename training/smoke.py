#!/usr/bin/env python3
"""Training smoke test (run by tests/training.rs, ~20 s on CPU): a few iterations of the real
training loop (train.py: augmentation, balanced loss, SGD, checkpoint, resume) on tiny synthetic
32x32 "liver ROI" crops, export to ONNX with fp16 weights, and a parity fixture.

  .venv-train/bin/python training/smoke.py OUT_DIR

Writes OUT_DIR/smoke.onnx, OUT_DIR/smoke_input.bin, OUT_DIR/smoke_prob.bin (float32 little-endian,
C order) and OUT_DIR/smoke.json (shapes); exits non-zero if anything fails, including PyTorch vs
Python onnxruntime parity (1e-4).
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train as T  # noqa: E402
from export import contract_metadata, fold, to_onnx  # noqa: E402

SIZE = 32


def synthetic_crops(n, rng):
    """Discs ("lesions", label 1) brighter than a noisy textured background, as uint8."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    img = np.zeros((n, SIZE, SIZE), np.float32)
    lab = np.zeros((n, SIZE, SIZE), np.uint8)
    for s in range(n):
        cy, cx, r = rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(3, 7)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img[s] = 0.3 + 0.1 * rng.standard_normal((SIZE, SIZE)) + 0.4 * disc
        lab[s] = disc
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8), lab


def main():
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "smoke_out")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1)
    data = os.path.join(out, "data")
    os.makedirs(data, exist_ok=True)
    for case, n in (("synth_a", 12), ("synth_b", 6)):
        img, lab = synthetic_crops(n, rng)
        np.savez_compressed(os.path.join(data, f"{case}.npz"), img=img, lab=lab, shape=np.array([n, SIZE, SIZE]))
    cfg = {
        "name": "smoke", "data": data, "run_root": os.path.join(out, "runs"), "log_dir": out,
        "classes": ["background", "lesion"], "input_size": [SIZE, SIZE],
        "preprocess": "hu_window:-100,400;equalize:256", "modality": "ct", "model_version": "smoke",
        "width": 4, "depth": 2, "batch_norm": True, "train_cases": ["synth_a"], "val_cases": ["synth_b"],
        "batch_size": 4, "epoch_iters": 3, "epochs": 2, "loss": {"weights": "frequency"},
        "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.8, "weight_decay": 0.0005},
        "augment": {"p": 1.0, "rotate_deg": 10, "translate": 0.05, "elastic_px": 2, "elastic_sigma": 4, "noise": 0.1},
        "seed": 5, "threads": 1, "checkpoint_minutes": 5,
    }
    T.train(cfg, resume=False, minutes=None, device="cpu", cosine=False)  # 2 epochs of 3 iterations
    cfg["epochs"] = 3
    model = T.train(cfg, resume=True, minutes=None, device="cpu", cosine=False)  # resumes at epoch 2, runs one more
    log = open(os.path.join(out, "smoke.tsv")).read().strip().splitlines()
    assert len(log) == 4, f"expected a header and 3 epoch lines in the log, got {log}"
    onnx_path = os.path.join(out, "smoke.onnx")
    meta = contract_metadata(cfg["classes"], cfg["input_size"], cfg["preprocess"], cfg["modality"], "smoke")
    shipped = to_onnx(model, onnx_path, meta, cfg["input_size"], half=True)
    x = torch.from_numpy(synthetic_crops(3, np.random.default_rng(9))[0].astype(np.float32) / 255).unsqueeze(1)
    with torch.no_grad():
        prob = shipped(x).numpy()          # the exported weights (BN folded, fp16-rounded)
        prob_train = model.eval()(x).numpy()
        prob_fold32 = fold(model)(x).numpy()
    assert np.abs(prob_fold32 - prob_train).max() < 1e-5, "BN folding changed the output"
    assert np.abs(prob - prob_train).max() < 1e-2, "fp16 weights changed the output by >= 1e-2"
    import onnxruntime as ort
    (y,) = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})
    err = float(np.abs(y - prob).max())
    assert err < 1e-4, f"onnxruntime vs PyTorch: max |diff| {err}"
    x.numpy().astype("<f4").tofile(os.path.join(out, "smoke_input.bin"))
    prob.astype("<f4").tofile(os.path.join(out, "smoke_prob.bin"))
    with open(os.path.join(out, "smoke.json"), "w") as f:
        json.dump({"input_shape": list(x.shape), "prob_shape": list(prob.shape),
                   "max_diff_python_onnxruntime": err,
                   "max_diff_fp16_vs_trained": float(np.abs(prob - prob_train).max())}, f)
    print(f"smoke ok: {onnx_path} ({os.path.getsize(onnx_path)} bytes), onnxruntime max diff {err:.2e}")


if __name__ == "__main__":
    main()
