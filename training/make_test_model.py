#!/usr/bin/env python3
"""Builds the tiny deterministic ONNX test models of voxflow's model contract (docs/MODELS.md)
and a parity fixture of Python onnxruntime's output.

Rerun (from the repo root, after `bash scripts/setup-ort.sh`):
    .venv/bin/python training/make_test_model.py
Writes nodes/kernels/onnx/tests/models/*.onnx and nodes/kernels/onnx/tests/models/parity_*.{bin,json}.
Everything is seeded, so reruns produce identical files.

Models (input name "image", output name "prob", batch dimension "N" dynamic):
  tiny_fcn.onnx        conv3x3(1->4, pad 1) + ReLU + conv3x3(4->2, pad 1) + Softmax(axis 1),
                       [N,1,64,64] -> [N,2,64,64], full metadata, padding 0.
  tiny_fcn_pad.onnx    valid conv5x5(1->3) + Softmax, [N,1,68,68] -> [N,3,64,64]; metadata says
                       input_size 64,64 and padding 2 (voxflow applies the reflect padding).
  identity.onnx        2 classes, prob[:,1] = image, prob[:,0] = 1 - image, [N,1,64,64].
  bad_rank.onnx        tiny_fcn graph with a rank-3 input [N,64,64] (error test).
  no_metadata.onnx     tiny_fcn without any metadata_props (error test).
  bad_classes.onnx     tiny_fcn with 3 class names for 2 output channels (error test).
  bad_size.onnx        tiny_fcn with voxflow.input_size "32,32" (error test).
  tiny_lesion.onnx     tiny_fcn graph with classes "background,lesion" (the cascade's lesion model
                       in tests; the weights are tiny_fcn's, so it fires on bright-ish regions).
  identity_lesion.onnx identity graph with classes "background,lesion" (paste-back exactness test).
  identity_lesion_level.onnx  identity_lesion with preprocess "hu_window:-100,400;scale:0.002,0.2;
                       liver_level:0.6" (crop_resample's liver level test).
  context.onnx         voxflow.context_slices 1: [N,3,64,64] (slices k-1, k, k+1) -> liver
                       probability 0.75 x slice k-1 + 0.25 x slice k+1 (background 1 minus it),
                       so a test sees which neighbour sits in which channel.
  bad_context.onnx     tiny_fcn (1 input channel) whose metadata says voxflow.context_slices 1 (error test).
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "nodes", "kernels", "onnx", "tests", "models")
OPSET = 17
IR_VERSION = 8


def metadata(classes="background,liver", size="64,64", padding="0", drop=(),
             preprocess="hu_window:-100,400;equalize:256"):
    props = {
        "voxflow.model_version": "1",
        "voxflow.classes": classes,
        "voxflow.input_size": size,
        "voxflow.padding": padding,
        "voxflow.preprocess": preprocess,
        "voxflow.modality": "ct",
    }
    return {k: v for k, v in props.items() if k not in drop}


def save(graph, name, props):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="voxflow-test")
    model.ir_version = IR_VERSION
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model, full_check=True)
    path = os.path.join(OUT, name)
    onnx.save(model, path)
    return path


def tiny_fcn_graph(rng, input_rank=4):
    w1 = (rng.standard_normal((4, 1, 3, 3)) * 3.0).astype(np.float32)
    # Bias centres each feature on the input's mid-grey (0.5) so the ReLUs are half active.
    b1 = (rng.standard_normal(4) * 0.1 - 0.5 * w1.sum(axis=(1, 2, 3))).astype(np.float32)
    w2 = (rng.standard_normal((2, 4, 3, 3)) * 1.5).astype(np.float32)
    b2 = (rng.standard_normal(2) * 0.1).astype(np.float32)
    nodes = []
    inp_name = "image"
    if input_rank == 3:
        # [N,64,64] -> [N,1,64,64] so the graph itself is valid; voxflow must still refuse it.
        nodes.append(helper.make_node("Unsqueeze", ["image", "axes"], ["image4"]))
        inp_name = "image4"
        inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 64, 64])
        inits = [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")]
    else:
        inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 64, 64])
        inits = []
    nodes += [
        helper.make_node("Conv", [inp_name, "w1", "b1"], ["h1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h1"], ["h1r"]),
        helper.make_node("Conv", ["h1r", "w2", "b2"], ["logits"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Softmax", ["logits"], ["prob"], axis=1),
    ]
    inits += [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    out = helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 2, 64, 64])
    return helper.make_graph(nodes, "tiny_fcn", [inp], [out], inits)


def tiny_fcn_pad_graph(rng):
    w = (rng.standard_normal((3, 1, 5, 5)) * 2.0).astype(np.float32)
    b = (rng.standard_normal(3) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["logits"], kernel_shape=[5, 5]),
        helper.make_node("Softmax", ["logits"], ["prob"], axis=1),
    ]
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 68, 68])
    out = helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 3, 64, 64])
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    return helper.make_graph(nodes, "tiny_fcn_pad", [inp], [out], inits)


def identity_graph():
    nodes = [
        helper.make_node("Sub", ["one", "image"], ["bg"]),
        helper.make_node("Concat", ["bg", "image"], ["prob"], axis=1),
    ]
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 64, 64])
    out = helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 2, 64, 64])
    one = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")
    return helper.make_graph(nodes, "identity", [inp], [out], [one])


def context_graph():
    """1x1 convolution of the 3 slices: liver = 0.75 x channel 0 + 0.25 x channel 2."""
    w = np.array([[-0.75, 0.0, -0.25], [0.75, 0.0, 0.25]], dtype=np.float32).reshape(2, 3, 1, 1)
    b = np.array([1.0, 0.0], dtype=np.float32)
    nodes = [helper.make_node("Conv", ["image", "w", "b"], ["prob"], kernel_shape=[1, 1])]
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 64, 64])
    out = helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 2, 64, 64])
    return helper.make_graph(nodes, "context", [inp], [out],
                             [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])


def write_fixture(name, model_path, x, padding):
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    xin = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), mode="reflect") if padding else x
    (y,) = sess.run(None, {"image": xin})
    x.astype("<f4").tofile(os.path.join(OUT, f"parity_{name}_input.bin"))
    y.astype("<f4").tofile(os.path.join(OUT, f"parity_{name}_output.bin"))
    with open(os.path.join(OUT, f"parity_{name}.json"), "w") as f:
        json.dump({"model": os.path.basename(model_path), "input_shape": list(x.shape),
                   "output_shape": list(y.shape), "padding": padding,
                   "onnxruntime": ort.__version__, "dtype": "float32 little-endian, C order"}, f, indent=1)
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20170101)
    fcn = tiny_fcn_graph(rng)
    tiny = save(fcn, "tiny_fcn.onnx", metadata())
    save(fcn, "no_metadata.onnx", {})
    save(fcn, "bad_classes.onnx", metadata(classes="background,liver,lesion"))
    save(fcn, "bad_size.onnx", metadata(size="32,32"))
    save(tiny_fcn_graph(np.random.default_rng(20170101), input_rank=3), "bad_rank.onnx", metadata())
    pad = save(tiny_fcn_pad_graph(rng), "tiny_fcn_pad.onnx",
               metadata(classes="background,liver,lesion", padding="2"))
    save(identity_graph(), "identity.onnx", metadata())
    # Cascade test models (added later; built from a fresh rng so the files above are unchanged).
    save(tiny_fcn_graph(np.random.default_rng(20170101)), "tiny_lesion.onnx",
         metadata(classes="background,lesion"))
    save(identity_graph(), "identity_lesion.onnx", metadata(classes="background,lesion"))
    save(identity_graph(), "identity_lesion_level.onnx",
         metadata(classes="background,lesion", preprocess="hu_window:-100,400;scale:0.002,0.2;liver_level:0.6"))
    save(context_graph(), "context.onnx", {**metadata(), "voxflow.context_slices": "1"})
    save(fcn, "bad_context.onnx", {**metadata(), "voxflow.context_slices": "1"})

    # Deterministic input in [0, 1]: a smooth pattern plus seeded noise.
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32) / 63.0
    base = 0.5 + 0.4 * np.sin(6.0 * xx) * np.cos(4.0 * yy)
    noise = np.random.default_rng(7).random((2, 1, 64, 64), dtype=np.float32) * 0.2
    x = np.clip(base[None, None] + noise - 0.1, 0.0, 1.0).astype(np.float32)
    write_fixture("tiny_fcn", tiny, x, 0)
    write_fixture("tiny_fcn_pad", pad, x, 2)
    for f in sorted(os.listdir(OUT)):
        print(f"{os.path.getsize(os.path.join(OUT, f)):8d}  {f}")


if __name__ == "__main__":
    sys.exit(main())
