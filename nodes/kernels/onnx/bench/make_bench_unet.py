#!/usr/bin/env python3
"""Random-weight U-Nets with the voxflow metadata, for throughput benchmarks only (not committed).

usage: .venv/bin/python nodes/kernels/onnx/bench/make_bench_unet.py OUTDIR [--width 16]
Writes OUTDIR/unet256_w{W}.onnx  (256x256, same-padded 3x3 convs, padding 0) and
       OUTDIR/unet388_w{W}.onnx  (the authors' layout: valid convs, 572 in / 388 out, padding 92).
Both: depth 4 (4 poolings), 2 conv+ReLU per level, 2x2 ConvTranspose up, skip concat, 2-class softmax.
Prints the multiply-add count per slice (GFLOP = 2 x MAC).
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Net:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n, self.macs = [], [], 0, 0

    def name(self, p):
        self.n += 1
        return f"{p}{self.n}"

    def conv(self, x, cin, cout, k, hw_out, pad, relu=True):
        w = (self.rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)
        b = np.zeros(cout, np.float32)
        wn, bn, y = self.name("w"), self.name("b"), self.name("conv")
        self.inits += [numpy_helper.from_array(w, wn), numpy_helper.from_array(b, bn)]
        self.nodes.append(helper.make_node("Conv", [x, wn, bn], [y], kernel_shape=[k, k], pads=[pad] * 4))
        self.macs += cout * cin * k * k * hw_out[0] * hw_out[1]
        if relu:
            r = self.name("relu")
            self.nodes.append(helper.make_node("Relu", [y], [r]))
            return r
        return y

    def up(self, x, cin, cout, hw_out):
        w = (self.rng.standard_normal((cin, cout, 2, 2)) * np.sqrt(1.0 / cin)).astype(np.float32)
        wn, y = self.name("wt"), self.name("up")
        self.inits.append(numpy_helper.from_array(w, wn))
        self.nodes.append(helper.make_node("ConvTranspose", [x, wn], [y], kernel_shape=[2, 2], strides=[2, 2]))
        self.macs += cin * cout * 4 * (hw_out[0] // 2) * (hw_out[1] // 2)
        return y

    def pool(self, x):
        y = self.name("pool")
        self.nodes.append(helper.make_node("MaxPool", [x], [y], kernel_shape=[2, 2], strides=[2, 2]))
        return y

    def crop(self, x, size, target):
        off = (size - target) // 2
        names = [self.name(s) for s in ("st", "en", "ax")]
        for n, v in zip(names, ([off, off], [off + target, off + target], [2, 3])):
            self.inits.append(numpy_helper.from_array(np.array(v, np.int64), n))
        y = self.name("crop")
        self.nodes.append(helper.make_node("Slice", [x] + names, [y]))
        return y


def unet(width, valid):
    net, pad = Net(12345), (0 if valid else 1)
    shrink = 2 if valid else 0
    size = 572 if valid else 256
    x, c, s, skips = "image", 1, size, []
    for level in range(5):
        cout = width * 2 ** level
        s -= shrink; x = net.conv(x, c, cout, 3, (s, s), pad)
        s -= shrink; x = net.conv(x, cout, cout, 3, (s, s), pad)
        c = cout
        if level < 4:
            skips.append((x, s, c)); x = net.pool(x); s //= 2
    for skip, ss, sc in reversed(skips):
        s *= 2; x = net.up(x, c, sc, (s, s))
        skip = net.crop(skip, ss, s) if ss != s else skip
        cat = net.name("cat"); net.nodes.append(helper.make_node("Concat", [skip, x], [cat], axis=1))
        s -= shrink; x = net.conv(cat, 2 * sc, sc, 3, (s, s), pad)
        s -= shrink; x = net.conv(x, sc, sc, 3, (s, s), pad)
        c = sc
    logits = net.conv(x, c, 2, 1, (s, s), 0, relu=False)
    net.nodes.append(helper.make_node("Softmax", [logits], ["prob"], axis=1))
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, size, size])
    out = helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 2, s, s])
    model = helper.make_model(helper.make_graph(net.nodes, "unet", [inp], [out], net.inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    props = {"voxflow.model_version": "bench", "voxflow.classes": "background,liver",
             "voxflow.input_size": f"{s},{s}", "voxflow.padding": str((size - s) // 2),
             "voxflow.preprocess": "hu_window:-100,400;equalize:256", "voxflow.modality": "ct"}
    for k, v in props.items():
        e = model.metadata_props.add(); e.key, e.value = k, v
    onnx.checker.check_model(model, full_check=True)
    return model, net.macs, s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir"); ap.add_argument("--width", type=int, default=16)
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    for valid, tag in ((False, "unet256"), (True, "unet388")):
        model, macs, s = unet(a.width, valid)
        path = os.path.join(a.outdir, f"{tag}_w{a.width}.onnx")
        onnx.save(model, path)
        print(f"{path}: out {s}x{s}, {2 * macs / 1e9:.2f} GFLOP/slice, {os.path.getsize(path) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
