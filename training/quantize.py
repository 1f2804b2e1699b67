#!/usr/bin/env python3
"""Int8 version of an exported model for CPU inference: ONNX QDQ, weights int8 per output
channel, activations uint8 per tensor, calibrated on the model's own training data (draw 0 of
its config's training set, as train.py builds it: real slices and synthetic tumours). The
contract metadata (`voxflow.*`) is kept, so the fcn node and crop_resample read the int8 model
as they read the float one. The shipped CT models are made this way (models/README.md);
`compare` measures how far an int8 model's labels are from the float model's.

  training/quantize.py quantize CONFIG FLOAT.onnx INT8.onnx [--slices 64] [--method minmax] [--float-ends]
  training/quantize.py compare CONFIG FLOAT.onnx INT8.onnx [--cases ...] [--threshold 0.5]

Everything it reads is licensed scan data under .cache/; the int8 model carries only ranges of
activations, like the weights carry what training saw.
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import ROOT, SliceSet, TrainingData, context_slices, liver_level, load_config  # noqa: E402

METHODS = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
           "entropy": CalibrationMethod.Entropy}


def calibration_slices(cfg, n):
    """`n` slices of the config's first training draw, [n, 2r + 1, H, W] float32 in [0, 1] (r: the
    config's context_slices): half with foreground where there is enough, chosen with the config's seed."""
    ds = TrainingData(cfg).draw(0)
    rng = np.random.default_rng(cfg.get("seed", 2017))
    n_fg = min(n // 2, len(ds.fg))
    idx = np.concatenate([rng.choice(ds.fg, n_fg, replace=False),
                          rng.choice(len(ds.img), n - n_fg, replace=False)])
    return ds.img[ds.neighbours(np.sort(idx), context_slices(cfg))].astype(np.float32) / 255.0


class Slices(CalibrationDataReader):
    def __init__(self, name, x):
        self.name, self.x, self.i = name, x, 0

    def get_next(self):
        if self.i >= len(self.x):
            return None
        self.i += 1
        return {self.name: self.x[self.i - 1:self.i]}


def end_convs(model):
    """Names of the first Conv (reads the image) and the one whose output the Softmax reads
    (the class scores)."""
    soft = next(n for n in model.graph.node if n.op_type == "Softmax")
    last = next(n for n in model.graph.node if soft.input[0] in n.output)
    first = next(n for n in model.graph.node if n.op_type == "Conv")
    if last.op_type != "Conv":
        sys.exit(f"quantize: the Softmax reads a {last.op_type}, not a Conv")
    return [first.name, last.name]


def quantize(cfg, src, dst, n, method, float_ends):
    quantize_on(src, dst, calibration_slices(cfg, n), method, float_ends)


def quantize_on(src, dst, x, method, float_ends):
    """Writes the int8 version of `src` to `dst`, calibrated on `x` ([n, channels, H, W] float32)."""
    model = onnx.load(src)
    name = model.graph.input[0].name
    n = len(x)
    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        raw = os.path.join(tmp, "int8.onnx")
        quant_pre_process(src, pre)
        # Exported nodes have no names; the quantizer selects nodes by name.
        m = onnx.load(pre)
        for i, node in enumerate(m.graph.node):
            node.name = node.name or f"{node.op_type}_{i}"
        onnx.save(m, pre)
        exclude = end_convs(m) if float_ends else []
        quantize_static(pre, raw, Slices(name, x), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=METHODS[method], nodes_to_exclude=exclude)
        q = onnx.load(raw)
    del q.metadata_props[:]
    q.metadata_props.extend(model.metadata_props)
    q.metadata_props.add(key="voxflow.quantized", value=f"int8 QDQ, {method} calibration on {n} training slices"
                         + (", first and last Conv in float" if float_ends else ""))
    onnx.checker.check_model(q)
    tmp_out = dst + ".tmp"
    onnx.save(q, tmp_out)
    os.replace(tmp_out, dst)
    print(f"{dst}: {os.path.getsize(dst)} bytes (float {os.path.getsize(src)}), calibrated on {len(x)} slices ({method})")


def labels(path, x, threshold):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    out = []
    for i in range(0, len(x), 8):
        p = s.run(None, {name: x[i:i + 8]})[0]
        out.append(p[:, 1] > threshold if p.shape[1] == 2 else p.argmax(axis=1) > 0)
    return np.concatenate(out)


def compare(cfg, float_path, int8_path, cases, threshold):
    """Dice between the float and int8 models' foreground on whole case slice sets."""
    ds = SliceSet(os.path.join(ROOT, cfg["data"]), cases, liver_level(cfg["preprocess"]))
    x = ds.img[ds.neighbours(np.arange(len(ds.img)), context_slices(cfg))].astype(np.float32) / 255.0
    a, b = labels(float_path, x, threshold), labels(int8_path, x, threshold)
    inter, total = int((a & b).sum()), int(a.sum() + b.sum())
    dice = 2 * inter / total if total else 1.0
    print(f"{int8_path} vs {float_path} on {', '.join(cases)} ({len(x)} slices): foreground Dice {dice:.5f}, "
          f"{int(a.sum())} / {int(b.sum())} pixels")
    return dice


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quantize")
    c = sub.add_parser("compare")
    for p in (q, c):
        p.add_argument("config")
        p.add_argument("float_model")
        p.add_argument("int8_model")
    q.add_argument("--slices", type=int, default=64)
    q.add_argument("--method", choices=sorted(METHODS), default="minmax")
    q.add_argument("--float-ends", action="store_true", help="keep the first Conv (the image) and the last (the class scores) in float")
    c.add_argument("--cases", nargs="+", required=True)
    c.add_argument("--threshold", type=float, default=0.5, help="two-class models: foreground above this")
    a = ap.parse_args()
    cfg = load_config(a.config)
    if a.cmd == "quantize":
        quantize(cfg, a.float_model, a.int8_model, a.slices, a.method, a.float_ends)
    else:
        compare(cfg, a.float_model, a.int8_model, a.cases, a.threshold)


if __name__ == "__main__":
    main()
