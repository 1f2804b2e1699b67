"""Exports a trained UNet to ONNX under voxflow's model contract (docs/MODELS.md).

The graph is written node by node with onnx.helper (no torch.onnx tracing): Conv, Relu,
MaxPool, ConvTranspose, Concat, Softmax; input "image" [N, 2r + 1, H, W] (r = context_slices,
`voxflow.context_slices`; 1 channel without context), output "prob" [N, C, H, W].
Batch normalisation is folded into the preceding convolution (`fold`). With `half=True` the
weights are stored as float16 initializers followed by a Cast to float32 (half the file size;
computation stays float32); `fold(..., half=True)` gives the PyTorch model with exactly those
rounded weights, which is what the exported file computes.
"""
import copy

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from unet import UNet

OPSET = 17
IR_VERSION = 8


def _fold_conv(conv, bn):
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if bn is not None:
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        w = w * scale.view(-1, 1, 1, 1)
        b = (b - bn.running_mean.double()) * scale + bn.bias.detach().double()
    return w.float(), b.float()


def fold(model, half=False):
    """A batch_norm=False UNet equal (in eval mode) to `model`, weights optionally rounded to fp16."""
    out = UNet(model.classes, model.width, model.depth, batch_norm=False, in_channels=model.in_channels)
    rnd = (lambda t: t.half().float()) if half else (lambda t: t)
    with torch.no_grad():
        for src, dst in zip(list(model.down) + list(model.up_conv), list(out.down) + list(out.up_conv)):
            for c, bn, dc in ((src.conv1, src.bn1, dst.conv1), (src.conv2, src.bn2, dst.conv2)):
                w, b = _fold_conv(c, bn)
                dc.weight.copy_(rnd(w))
                dc.bias.copy_(rnd(b))
        for src, dst in zip(list(model.up) + [model.head], list(out.up) + [out.head]):
            dst.weight.copy_(rnd(src.weight.detach()))
            dst.bias.copy_(rnd(src.bias.detach()))
    return out.eval()


def to_onnx(model, path, metadata, input_size, half=True):
    """Writes `model` (a UNet, any mode) to `path` with `metadata` (dict of voxflow.* keys)."""
    m = fold(copy.deepcopy(model).eval(), half=half)
    h, w = input_size
    nodes, inits = [], []
    counter = [0]

    def param(t, name):
        arr = t.detach().cpu().numpy().astype(np.float32)
        if half:
            inits.append(numpy_helper.from_array(arr.astype(np.float16), name + "_f16"))
            nodes.append(helper.make_node("Cast", [name + "_f16"], [name], to=TensorProto.FLOAT))
        else:
            inits.append(numpy_helper.from_array(arr, name))
        return name

    def conv(x, layer, name, pad):
        wn, bn = param(layer.weight, name + ".w"), param(layer.bias, name + ".b")
        k = layer.weight.shape[-1]
        nodes.append(helper.make_node("Conv", [x, wn, bn], [name], kernel_shape=[k, k], pads=[pad] * 4))
        return name

    def relu(x):
        counter[0] += 1
        y = f"relu{counter[0]}"
        nodes.append(helper.make_node("Relu", [x], [y]))
        return y

    def block(x, dc, name):
        x = relu(conv(x, dc.conv1, name + ".conv1", 1))
        return relu(conv(x, dc.conv2, name + ".conv2", 1))

    x, skips = "image", []
    for i, dc in enumerate(m.down):
        x = block(x, dc, f"down{i}")
        if i < m.depth:
            skips.append(x)
            nodes.append(helper.make_node("MaxPool", [x], [f"pool{i}"], kernel_shape=[2, 2], strides=[2, 2]))
            x = f"pool{i}"
    for i, (up, dc) in enumerate(zip(m.up, m.up_conv)):
        wn, bn = param(up.weight, f"up{i}.w"), param(up.bias, f"up{i}.b")
        nodes.append(helper.make_node("ConvTranspose", [x, wn, bn], [f"up{i}"], kernel_shape=[2, 2], strides=[2, 2]))
        nodes.append(helper.make_node("Concat", [skips.pop(), f"up{i}"], [f"cat{i}"], axis=1))
        x = block(f"cat{i}", dc, f"dec{i}")
    logits = conv(x, m.head, "head", 0)
    nodes.append(helper.make_node("Softmax", [logits], ["prob"], axis=1))
    graph = helper.make_graph(
        nodes, "voxflow_unet",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", m.in_channels, h, w])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", m.classes, h, w])],
        inits)
    model_proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="voxflow-training")
    model_proto.ir_version = IR_VERSION
    for k, v in metadata.items():
        e = model_proto.metadata_props.add()
        e.key, e.value = k, str(v)
    onnx.checker.check_model(model_proto, full_check=True)
    tmp = str(path) + ".tmp"
    onnx.save(model_proto, tmp)
    import os
    os.replace(tmp, path)
    return m


def contract_metadata(classes, input_size, preprocess, modality, version, context_slices=0):
    meta = {
        "voxflow.model_version": version,
        "voxflow.classes": ",".join(classes),
        "voxflow.input_size": f"{input_size[0]},{input_size[1]}",
        "voxflow.padding": "0",
        "voxflow.preprocess": preprocess,
        "voxflow.modality": modality,
    }
    if context_slices:
        meta["voxflow.context_slices"] = str(context_slices)
    return meta


def load_onnx_weights(model, path):
    """Initialises `model` (a UNet) from an ONNX file written by `to_onnx` with the same width,
    depth and classes. Folded convolutions load as they are; with batch norm the folded bias goes
    to the batch norm's shift and its scale and running statistics are the identity, so in eval
    mode `model` computes what the file computes. A one-channel file initialises a model with
    neighbour slices too (`in_channels` > 1): its first convolution reads the middle channel and
    the neighbours start at zero weight, so the model starts out computing what the file computes."""
    m = onnx.load(str(path))
    if any(p.key == "voxflow.quantized" for p in m.metadata_props):
        raise ValueError(f"{path}: an int8 model (training/quantize.py); initialise from its float "
                         "version (models/float/ or the git history, models/README.md)")
    inits = {}
    for t in m.graph.initializer:
        name = t.name[:-4] if t.name.endswith("_f16") else t.name
        inits[name] = torch.from_numpy(numpy_helper.to_array(t).astype(np.float32))

    def take(name, dst):
        if name not in inits:
            raise ValueError(f"{path}: no weight {name} (not a voxflow U-Net of this depth?)")
        src = inits.pop(name)
        if name == "down0.conv1.w" and src.shape[1] == 1 and dst.shape[1] > 1 and dst.shape[1] % 2 == 1:
            src = torch.cat([torch.zeros_like(src)] * (dst.shape[1] // 2) + [src]
                            + [torch.zeros_like(src)] * (dst.shape[1] // 2), dim=1)
        if src.shape != dst.shape:
            raise ValueError(f"{path}: {name} has shape {tuple(src.shape)}, the model needs {tuple(dst.shape)}")
        dst.copy_(src)

    with torch.no_grad():
        blocks = [(f"down{i}", b) for i, b in enumerate(model.down)] + [(f"dec{i}", b) for i, b in enumerate(model.up_conv)]
        for name, b in blocks:
            for conv, bn, k in ((b.conv1, b.bn1, "conv1"), (b.conv2, b.bn2, "conv2")):
                take(f"{name}.{k}.w", conv.weight)
                if bn is None:
                    take(f"{name}.{k}.b", conv.bias)
                else:
                    take(f"{name}.{k}.b", bn.bias)
                    bn.weight.fill_(1.0)
                    bn.running_mean.zero_()
                    bn.running_var.fill_(1.0 - bn.eps)
        for i, up in enumerate(model.up):
            take(f"up{i}.w", up.weight)
            take(f"up{i}.b", up.bias)
        take("head.w", model.head.weight)
        take("head.b", model.head.bias)
    if inits:
        raise ValueError(f"{path}: weights left over: {sorted(inits)[:4]} (a deeper model?)")
    return model
