#!/usr/bin/env python3
"""Trains a cascade U-Net from a config (training/configs/*.yaml) on the compact training set
written by training/prepare.py, checkpointing as it goes, and exports it to ONNX.

  train:   .venv-train/bin/python training/train.py train training/configs/ct_liver.yaml
  resume:  .venv-train/bin/python training/train.py train training/configs/ct_liver.yaml --resume
  export:  .venv-train/bin/python training/train.py export training/configs/ct_liver.yaml \
               [--checkpoint best|last] [--out models/ct_liver.onnx]
  GPU:     ... train CONFIG --device cuda --minutes 6 --cosine   (training/gpu_train_all.sh)

On a GPU (`--device cuda`) the config's `gpu:` section overrides its keys (e.g. a larger batch),
the training set sits on the GPU, augmentation runs there and the forward/backward pass uses
bfloat16 autocast. `--cosine` decays the learning rate to 0 over the `--minutes` budget (for a
single time-boxed run; not with `--resume`).

Checkpoints (last.pt every `checkpoint_minutes` and at each epoch's end, best.pt at the best
validation Dice) go to .cache/train/runs/NAME/ (git-ignored); the per-epoch log (loss,
validation Dice per held-out case) to models/logs/NAME.tsv, next to the model cards.
An "epoch" is `epoch_iters` iterations (random slices), not a pass over the data.

A `synth:` section (config: the synthesis YAML, hosts: healthy livers prepared with
`prepare.py --hosts`, every_epochs, target) draws synthetic tumours (synth_tumor.py) afresh every
`every_epochs` epochs, deterministically from the seed and the draw's number:
`target: lesion_rois` (default) adds the hosts' liver ROIs with the tumours as lesion to the real
ROIs of `train_cases` (which may be empty); `target: liver_slices` replaces the hosts' liver
slices among `train_cases` by slices with tumours, their liver label unchanged.

`context_slices: r` (whole-slice data only) gives the network each slice between its r
neighbours above and below, 2r + 1 input channels (the volume's end slices repeated), as the fcn
node does for a model with `voxflow.context_slices`; a one-channel `init:` model fills the middle
channel.
"""
import argparse
import copy
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from augment import augment  # noqa: E402
from export import contract_metadata, load_onnx_weights, to_onnx  # noqa: E402
from losses import balanced_cross_entropy, frequency_weights  # noqa: E402
from synth_data import HostSet, draw_liver_slices, draw_rois  # noqa: E402
from synth_tumor import load_config as load_synth_config  # noqa: E402
from unet import UNet, count_params  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def load_config(path):
    with open(path) as f:
        text = f.read()
    if path.endswith(".json"):
        cfg = json.loads(text)
    else:
        import yaml
        cfg = yaml.safe_load(text)
    cfg.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    context_slices(cfg)
    return cfg


def context_slices(cfg):
    """The config's context_slices (0 if absent); exits unless it is what the model contract allows."""
    r = cfg.get("context_slices", 0)
    if type(r) is not int or not 0 <= r <= 8:
        sys.exit(f"train: {cfg.get('name')}: context_slices must be a whole number from 0 to 8 "
                 f"(the model contract's voxflow.context_slices), not {r!r}")
    return r


def neighbour_indices(idx, context, first, last):
    """[n, 2 context + 1] indices of slices idx - context .. idx + context, clamped to first .. last
    (scalars or one per index), as the fcn node repeats a volume's end slices."""
    idx = np.asarray(idx)
    return np.clip(idx[:, None] + np.arange(-context, context + 1),
                   np.asarray(first)[..., None], np.asarray(last)[..., None])


def run_dir(cfg):
    return os.path.join(ROOT, cfg.get("run_root", ".cache/train/runs"), cfg["name"])


def log_path(cfg):
    return os.path.join(ROOT, cfg.get("log_dir", "models/logs"), cfg["name"] + ".tsv")


def liver_level(preprocess):
    """V of a `liver_level:V` step in a `voxflow.preprocess` string, or None."""
    for step in preprocess.split(";"):
        name, _, arg = step.strip().partition(":")
        if name == "liver_level":
            return float(arg)
    return None


def shift_liver(img, median, level):
    """uint8 ROIs with their liver (non-zero) pixels moved from the case's liver median to
    `level` (both in [0, 1]), as crop_resample does for a `liver_level` model. Here edge pixels
    (a blend of liver and masked 0 after resizing) move by the whole offset; a fold model's own
    training case is not moved at all."""
    out = np.clip(img.astype(np.int16) + int(round((level - median) * 255)), 0, 255).astype(np.uint8)
    return np.where(img > 0, out, 0).astype(np.uint8)


class SliceSet:
    """uint8 slices of some cases: img [S, H, W], lab [S, H, W], case index per slice. With
    `level`, each case's liver pixels are shifted to that liver level (`shift_liver`)."""

    def __init__(self, folder, cases, level=None):
        imgs, labs, case_of = [], [], []
        for ci, case in enumerate(cases):
            path = os.path.join(folder, f"{case}.npz")
            if not os.path.exists(path):
                sys.exit(f"train: {path} missing: run training/prepare.py first")
            z = np.load(path)
            if level is not None and "liver_median" not in z:
                sys.exit(f"train: {path} has no liver_median (liver_level needs ROIs from prepare.py --roi-input window)")
            imgs.append(z["img"] if level is None else shift_liver(z["img"], float(z["liver_median"]), level))
            labs.append(z["lab"])
            case_of.append(np.full(len(z["img"]), ci))
        self.cases = list(cases)
        self.img = np.concatenate(imgs)
        self.lab = np.concatenate(labs)
        self.case = np.concatenate(case_of)
        self._index()

    def _index(self):
        self.fg = np.flatnonzero(self.lab.reshape(len(self.lab), -1).max(axis=1) > 0)
        self.bg = np.setdiff1d(np.arange(len(self.lab)), self.fg)
        # Each slice's case's first and last slice (a case's slices are consecutive).
        starts = np.r_[0, np.flatnonzero(np.diff(self.case)) + 1]
        run = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(self.case)]))
        self.first, self.last = starts[run], np.r_[starts[1:], len(self.case)][run] - 1

    def neighbours(self, idx, context):
        """neighbour_indices within each slice's case."""
        idx = np.asarray(idx)
        return neighbour_indices(idx, context, self.first[idx], self.last[idx])

    @classmethod
    def with_extra(cls, base, cases, img, lab, case_of):
        """A set of `base`'s slices (or none) plus `img` / `lab` of further `cases` (`case_of`
        indexes `cases`)."""
        s = cls.__new__(cls)
        off = len(base.cases) if base else 0
        s.cases = (base.cases if base else []) + list(cases)
        s.img = np.concatenate([base.img, img]) if base else img
        s.lab = np.concatenate([base.lab, lab]) if base else lab
        s.case = np.concatenate([base.case, case_of + off]) if base else case_of
        s._index()
        return s

    def counts(self, classes):
        return np.bincount(self.lab.ravel(), minlength=classes)[:classes]


    def to(self, device):
        """Keeps a uint8 copy of the slices on `device` for batching."""
        self.img_t = torch.from_numpy(self.img).to(device)
        self.lab_t = torch.from_numpy(self.lab).to(device)
        return self


class TrainingData:
    """What a config trains on: its real slices (`train_cases`) and, with a `synth:` section,
    synthetic tumours drawn into its host livers anew for each draw number."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.seed = cfg.get("seed", 2017)
        self.folder = os.path.join(ROOT, cfg["data"])
        # The lesion ROIs' mask closed like crop_resample's close_mm: real ROIs from prepare.py
        # --roi-close-mm (their folder says the radius), synthetic ones closed at each draw.
        self.roi_close_mm = float(cfg.get("roi_close_mm", 0.0))
        if self.roi_close_mm and not cfg["data"].rstrip("/").endswith(f"_close{self.roi_close_mm:g}"):
            sys.exit(f"train: {cfg['name']}: roi_close_mm {self.roi_close_mm:g} needs ROIs from prepare.py --roi-close-mm "
                     f"{self.roi_close_mm:g} (a data folder ending _close{self.roi_close_mm:g}), not {cfg['data']}")
        self.level = liver_level(cfg["preprocess"])
        if context_slices(cfg) and os.path.basename(self.folder.rstrip("/")).startswith("roi"):
            sys.exit(f"train: {cfg['name']}: context_slices needs whole slices (prepare.py without --roi), not {cfg['data']}")
        self.real = SliceSet(self.folder, cfg["train_cases"], self.level) if cfg["train_cases"] else None
        sy = self.sy = cfg.get("synth")
        if sy is None and self.real is None:
            sys.exit(f"train: {cfg['name']}: no train_cases and no synth section: nothing to train on")
        self.hosts = None
        if sy is not None:
            self.target = sy.get("target", "lesion_rois")
            if self.target not in ("lesion_rois", "liver_slices"):
                sys.exit(f"train: {cfg['name']}: synth target {self.target!r} is neither lesion_rois nor liver_slices")
            if self.target == "lesion_rois" and context_slices(cfg):
                sys.exit(f"train: {cfg['name']}: context_slices needs whole volumes' slices, not lesion ROIs")
            if self.target == "liver_slices" and (self.real is None or not set(sy["hosts"]) <= set(self.real.cases)):
                sys.exit(f"train: {cfg['name']}: synth target liver_slices draws into training cases: every host must be in train_cases")
            self.hosts = HostSet(os.path.join(ROOT, sy.get("data", ".cache/train/hosts")), sy["hosts"],
                                 load_synth_config(os.path.join(ROOT, sy["config"])))

    def draw(self, draw):
        """The real training slices plus, with a synth section, synthetic draw number `draw`
        (deterministic from the seed and `draw`)."""
        real, hosts, cfg = self.real, self.hosts, self.cfg
        if hosts is None:
            return real
        t0 = time.time()
        rng_draw = np.random.default_rng([self.seed, draw])
        if self.target == "liver_slices":  # the hosts' liver slabs replaced, labels unchanged
            slabs, n = draw_liver_slices(hosts, rng_draw, tuple(cfg["input_size"]))
            s = copy.copy(real)
            s.img = real.img.copy()
            for case, (k0, sl) in zip(hosts.cases, slabs):
                first = int(np.flatnonzero(real.case == real.cases.index(case))[0])
                s.img[first + k0:first + k0 + len(sl)] = sl
            print(f"synthetic draw {draw}: {n} tumours in {len(hosts.cases)} training livers, {time.time() - t0:.1f} s", flush=True)
            return s
        img, lab, case_of, medians, n = draw_rois(hosts, rng_draw, tuple(cfg["input_size"]),
                                                  self.sy.get("min_box", 60), self.roi_close_mm)
        if self.level is not None:
            for ci, med in enumerate(medians):
                m = case_of == ci
                img[m] = shift_liver(img[m], med, self.level)
        s = SliceSet.with_extra(real, hosts.cases, img, lab, case_of)
        print(f"synthetic draw {draw}: {n} tumours in {len(hosts.cases)} livers, {len(img)} ROIs "
              f"({int((lab.reshape(len(lab), -1).max(axis=1) > 0).sum())} with tumour), {time.time() - t0:.1f} s", flush=True)
        return s


def batch_tensors(ds, idx, context=0):
    """float image [n, 2 context + 1, H, W] in [0, 1] (each slice between its neighbours) and
    int64 labels [n, H, W], on the set's device."""
    ii = torch.as_tensor(np.asarray(idx), device=ds.img_t.device)
    img = ds.img_t[torch.as_tensor(ds.neighbours(idx, context), device=ds.img_t.device)].float().div_(255.0)
    lab = ds.lab_t[ii].long()
    return img, lab


def make_optimizer(cfg, params):
    o = cfg["optimizer"]
    if o["name"] == "sgd":
        return torch.optim.SGD(params, lr=o.get("lr", 0.001), momentum=o.get("momentum", 0.8),
                               weight_decay=o.get("weight_decay", 0.0005))
    if o["name"] == "adam":
        return torch.optim.Adam(params, lr=o.get("lr", 0.001), eps=o.get("eps", 0.1),
                                weight_decay=o.get("weight_decay", 0.0))
    sys.exit(f"train: unknown optimizer {o['name']!r} (sgd or adam)")


def build_model(cfg):
    return UNet(len(cfg["classes"]), cfg.get("width", 16), cfg.get("depth", 4), cfg.get("batch_norm", True),
                in_channels=2 * context_slices(cfg) + 1)


@torch.no_grad()
def validate(model, ds, stride, batch, amp=False, context=0):
    """3D Dice of the foreground per held-out case, on the training grid (every `stride`-th slice)."""
    model.eval()
    inter = np.zeros(len(ds.cases))
    sums = np.zeros(len(ds.cases))
    idx = np.arange(0, len(ds.img), stride)
    for s in range(0, len(idx), batch):
        b = idx[s:s + batch]
        img, lab = batch_tensors(ds, b, context)
        with torch.autocast(img.device.type, dtype=torch.bfloat16, enabled=amp):
            pred = model(img).argmax(dim=1).cpu().numpy() > 0
        ref = lab.cpu().numpy() > 0
        for c in np.unique(ds.case[b]):
            m = ds.case[b] == c
            inter[c] += np.logical_and(pred[m], ref[m]).sum()
            sums[c] += pred[m].sum() + ref[m].sum()
    model.train()
    return [float(2 * i / s) if s > 0 else 1.0 for i, s in zip(inter, sums)]


def save_ckpt(path, state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def init_model(spec):
    """The ONNX file an `init:` names: a path under the repository, or `git:REV:PATH` for the file
    as committed at REV (so a config still reproduces its model after the file is replaced)."""
    if not spec.startswith("git:"):
        return os.path.join(ROOT, spec)
    rev_path = spec[len("git:"):]
    out = subprocess.run(["git", "-C", ROOT, "show", rev_path], capture_output=True)
    if out.returncode != 0:
        sys.exit(f"train: init {spec}: git show failed: {out.stderr.decode().strip()}")
    f = tempfile.NamedTemporaryFile(suffix=".onnx", delete=False)
    f.write(out.stdout)
    f.close()
    return f.name


def train(cfg, resume, minutes, device, cosine):
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("train: --device cuda but torch sees no CUDA device")
        cfg = {**cfg, **cfg.get("gpu", {})}
        torch.backends.cudnn.benchmark = True
    amp = dev.type == "cuda"
    if cosine and (resume or not minutes):
        sys.exit("train: --cosine needs --minutes and no --resume (it decays over one run's budget)")
    stop_at = time.time() + minutes * 60 if minutes else None
    torch.set_num_threads(cfg.get("threads", 2))
    seed = cfg.get("seed", 2017)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    data = TrainingData(cfg)
    hosts, level, sy = data.hosts, data.level, data.sy
    context = context_slices(cfg)

    def training_set(draw):
        return data.draw(draw).to(dev)

    tr = training_set(0)
    va = SliceSet(data.folder, cfg["val_cases"], level).to(dev) if cfg.get("val_cases") else None
    classes = len(cfg["classes"])
    w = cfg["loss"].get("weights", "frequency")
    weights = frequency_weights(tr.counts(classes)) if w == "frequency" else np.asarray(w, dtype=np.float64)
    model = build_model(cfg)
    if cfg.get("init") and not resume:
        path = init_model(cfg["init"])
        load_onnx_weights(model, path)
        if cfg["init"].startswith("git:"):
            os.remove(path)
        print(f"{cfg['name']}: initialised from {cfg['init']}", flush=True)
    model = model.to(dev)
    opt = make_optimizer(cfg, model.parameters())
    lr0 = [g["lr"] for g in opt.param_groups]
    rd = run_dir(cfg)
    os.makedirs(rd, exist_ok=True)
    os.makedirs(os.path.dirname(log_path(cfg)), exist_ok=True)
    gen = torch.Generator(device=dev).manual_seed(seed)
    rng = np.random.default_rng(seed)
    epoch, it, best, elapsed = 0, 0, -1.0, 0.0
    every = int(sy.get("every_epochs", 1)) if sy else 0
    last = os.path.join(rd, "last.pt")
    if resume:
        if not os.path.exists(last):
            sys.exit(f"train: --resume but no checkpoint {last}")
        st = torch.load(last, weights_only=False, map_location=dev)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        gen.set_state(st["gen"].cpu())
        rng.bit_generator.state = st["rng"]
        epoch, it, best, elapsed = st["epoch"], st["it"], st["best"], st["elapsed"]
        print(f"resumed {cfg['name']} at epoch {epoch} iteration {it} (best Dice {best:.4f}, {elapsed / 60:.1f} min trained)", flush=True)
        if hosts is not None and epoch >= every:
            tr = training_set(epoch // every)
    elif os.path.exists(log_path(cfg)):
        os.remove(log_path(cfg))
    if not os.path.exists(log_path(cfg)):
        with open(log_path(cfg), "w") as f:
            f.write("epoch\titerations\tminutes\ttrain_loss\tval_dice_mean\t" + "\t".join(f"dice_{c}" for c in (va.cases if va else [])) + "\n")
    print(f"{cfg['name']}: {count_params(model)} parameters, {len(tr.img)} training slices "
          f"({len(tr.fg)} with foreground), class weights {np.round(weights, 3).tolist()}", flush=True)
    bs, ep_iters = cfg.get("batch_size", 4), cfg.get("epoch_iters", 200)
    fg_frac = cfg.get("foreground_fraction")
    ckpt_every = cfg.get("checkpoint_minutes", 5) * 60
    t_start, t_ckpt = time.time(), time.time()
    losses = []

    def state():
        return {"model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
                "rng": rng.bit_generator.state, "epoch": epoch, "it": it, "best": best,
                "elapsed": elapsed + time.time() - t_start, "config": cfg, "weights": weights.tolist()}

    model.train()
    while epoch < cfg.get("epochs", 1000):
        if stop_at and time.time() >= stop_at:
            print("stop time reached", flush=True)
            break
        if fg_frac is None:  # uniform over all slices: class frequencies as in the data
            idx = rng.choice(len(tr.img), bs)
        else:
            pick_fg = rng.random(bs) < fg_frac
            pool_fg, pool_bg = tr.fg, (tr.bg if len(tr.bg) else tr.fg)
            idx = np.where(pick_fg, rng.choice(pool_fg, bs), rng.choice(pool_bg, bs))
        if cosine:
            frac = min(1.0, (time.time() - t_start) / (stop_at - t_start))
            for g, lr in zip(opt.param_groups, lr0):
                g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * frac))
        img, lab = batch_tensors(tr, idx, context)
        img, lab = augment(img, lab, cfg.get("augment", {}), gen)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            logits = model.logits(img)
        loss = balanced_cross_entropy(logits.float(), lab, weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
        it += 1
        if it % 10 == 0:
            rate = 10 * bs / max(1e-9, time.time() - getattr(train, "_t10", t_start))
            train._t10 = time.time()
            print(f"  it {it} loss {torch.stack(losses[-10:]).mean().item():.4f} ({rate:.2f} slices/s)", flush=True)
        if it % ep_iters == 0:
            epoch += 1
            dice = validate(model, va, cfg.get("val_stride", 1), bs * 2, amp, context) if va else []
            mean = float(np.mean(dice)) if dice else float("nan")
            trained = (elapsed + time.time() - t_start) / 60
            mloss = torch.stack(losses).mean().item()
            with open(log_path(cfg), "a") as f:
                f.write(f"{epoch}\t{it}\t{trained:.2f}\t{mloss:.5f}\t{mean:.4f}\t" + "\t".join(f"{d:.4f}" for d in dice) + "\n")
            print(f"epoch {epoch}: loss {mloss:.4f}, val Dice {mean:.4f} {np.round(dice, 4).tolist()}, {trained:.1f} min", flush=True)
            losses = []
            if dice and mean > best:
                best = mean
                save_ckpt(os.path.join(rd, "best.pt"), state())
            save_ckpt(last, state())
            t_ckpt = time.time()
            if hosts is not None and epoch % every == 0:
                tr = training_set(epoch // every)
        elif time.time() - t_ckpt > ckpt_every:
            save_ckpt(last, state())
            t_ckpt = time.time()
    save_ckpt(last, state())
    if not os.path.exists(os.path.join(rd, "best.pt")):
        save_ckpt(os.path.join(rd, "best.pt"), state())
    return model


def export(cfg, which, out):
    ck = os.path.join(run_dir(cfg), f"{which}.pt")
    if not os.path.exists(ck):
        sys.exit(f"export: no checkpoint {ck}")
    st = torch.load(ck, weights_only=False, map_location="cpu")
    model = build_model(cfg)
    model.load_state_dict(st["model"])
    size = cfg["input_size"]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    meta = contract_metadata(cfg["classes"], size, cfg["preprocess"], cfg["modality"], cfg.get("model_version", "1"),
                             context_slices(cfg))
    to_onnx(model, out, meta, size, half=cfg.get("export_half", True))
    print(f"exported {ck} (epoch {st['epoch']}, iteration {st['it']}, best val Dice {st['best']:.4f}) -> {out} "
          f"({os.path.getsize(out)} bytes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("config")
    t.add_argument("--resume", action="store_true")
    t.add_argument("--minutes", type=float, help="stop (with a checkpoint) after this many minutes")
    t.add_argument("--device", default="cpu", help="cpu or cuda")
    t.add_argument("--cosine", action="store_true", help="cosine learning-rate decay over --minutes")
    e = sub.add_parser("export")
    e.add_argument("config")
    e.add_argument("--checkpoint", default="best", choices=["best", "last"])
    e.add_argument("--out")
    a = ap.parse_args()
    cfg = load_config(a.config)
    if a.cmd == "train":
        train(cfg, a.resume, a.minutes, a.device, a.cosine)
    else:
        export(cfg, a.checkpoint, a.out or os.path.join(ROOT, "models", cfg["name"] + ".onnx"))


if __name__ == "__main__":
    main()
