#!/usr/bin/env python3
"""Prepares the compact training set: preprocessing runs through voxflow itself (the same graph
the inference uses), this script only reads what voxflow wrote and resamples it.

1. CT: `voxflow run graphs/ct_preprocess.yaml --set input=CASE --set output=.cache/train/pre/CASE.nii.gz`
   (HU window [-100, 400], histogram equalisation 256 bins -> [0, 1]).
   MR (`--modality mr`, CHAOS cases): `graphs/mri_preprocess.yaml` (N4 unless `--no-n4`,
   percentile normalisation, equalisation), written to .cache/train/pre_mr_{n4,raw}/.
2. Whole slices (liver network): each slice resized to SIZE x SIZE exactly as the fcn node does
   (bilinear, align_corners=False, no antialias); labels as one-hot resized the same way, then
   argmax. Stored as uint8 (image * 255 rounded) in .cache/train/slices{SIZE}/CASE.npz.
3. Liver ROIs (lesion network, `--roi`): per slice with ground-truth liver, the crop of
   `roi_crop` (the crop_resample rule), non-liver pixels set to 0, resized to SIZE x SIZE.
   Stored in .cache/train/roi{SIZE}/CASE.npz; with `--roi-input window` cut from the windowed
   volume in [0, 1] instead (ct_preprocess.yaml `windowed`), in .cache/train/roi{SIZE}_window/.
   With `--roi-close-mm R` the mask is the liver closed per slice by R mm, as crop_resample's
   `close_mm` closes the liver FCN's mask, so the network sees at training what the closing adds
   at inference (gallbladder, fissures, the tissue beside a concave edge) as not-lesion; in
   ..._close{R}/. Each ROI file also holds `liver_median`, the median of the ROI input over that
   mask (train.py moves it to a model's `liver_level:V`, as crop_resample does).
4. Tumour hosts (`--hosts`, CT): the windowed volume (voxflow's, back in HU: the window
   [-100, 400] is exact inside it) and the liver mask over the slices with liver, full in-plane,
   with the voxel spacing, in .cache/train/hosts/CASE.npz; train.py's `synth:` section draws
   synthetic tumours into them (training/synth_tumor.py). BTCV 0008, 0022 and 0025 are refused:
   they are the healthy-liver check and stay out of all synthesis.
MR slices go to .cache/train/mr{SIZE}_{n4,raw}/CASE.npz (same layout as whole CT slices).

Everything here is derived from licensed scans: it lives under the git-ignored .cache/ only.
"""
import argparse
import os
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CASES_CT = ["ircadb01", "ircadb17"] + [f"btcv{n:04d}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 21, 22, 23, 24, 25, 29)]
CASES_MR = [f"chaos_mr_t2_{n:02d}" for n in (1, 2, 3, 5, 8, 10, 13, 15, 19, 20, 21, 22, 31, 32)]


def case_files(data, case):
    if case.startswith("chaos"):
        return os.path.join(data, f"{case}_image.nii.gz"), os.path.join(data, f"{case}_label.nii.gz")
    return os.path.join(data, f"{case}_ct.nii.gz"), os.path.join(data, f"{case}_label.nii.gz")


def load_kji(path):
    """A NIfTI as voxflow's (nk, nj, ni) array: NIfTI voxel (i, j, k) = arr[k, j, i]."""
    return np.ascontiguousarray(np.asanyarray(nib.load(path).dataobj).transpose(2, 1, 0))


def resize_image(x, size):
    """[K, H, W] float -> [K, size, size], bilinear, align_corners=False, no antialias (= fcn node)."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(1)
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=False).squeeze(1).numpy()


def resize_label(lab, size, classes):
    """[K, H, W] int -> [K, size, size]: one-hot resized bilinearly, then argmax."""
    onehot = np.stack([(lab == c).astype(np.float32) for c in range(classes)], axis=1)
    t = F.interpolate(torch.from_numpy(onehot), size=size, mode="bilinear", align_corners=False, antialias=False)
    return t.argmax(dim=1).numpy().astype(np.uint8)


def roi_box(mask2d, min_box):
    """Liver bounding box of one slice (rows j0..j1, cols i0..i1, end exclusive), each side widened
    symmetrically to at least `min_box` px (an odd remainder goes to the far end) and shifted back
    inside the slice when it crosses an edge; never larger than the slice. None without liver.
    Same rule as `slice_box`/`widen` in nodes/src/inference/crop_resample.rs with margin_mm 0
    (the node's default); tests/test_training.py repeats the node's unit-test cases."""
    rows = np.flatnonzero(mask2d.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask2d.any(axis=0))

    def widen(lo, hi, n):
        ln = hi - lo
        if ln < min_box:
            need = min_box - ln
            lo -= need // 2
            hi += need - need // 2
        if lo < 0:
            hi, lo = hi - lo, 0
        if hi > n:
            lo, hi = lo - (hi - n), n
        return max(lo, 0), hi

    j0, j1 = widen(int(rows[0]), int(rows[-1]) + 1, mask2d.shape[0])
    i0, i1 = widen(int(cols[0]), int(cols[-1]) + 1, mask2d.shape[1])
    return j0, j1, i0, i1


def close_slices(mask, radius_mm, spacing_ji):
    """Per-slice closing of a (k, j, i) mask by a disc of radius_mm (mm, in-plane spacing
    (dj, di)): distance-based dilation then erosion, outside the slice counting as dilated; the
    result contains the mask. The rule of `close_mm` (close_slices in nodes/kernels/volume/src/morphology.rs)."""
    out = mask.copy()
    for k in range(mask.shape[0]):
        s = mask[k]
        if not s.any():
            continue
        dil = ndimage.distance_transform_edt(~s, sampling=spacing_ji) <= radius_mm
        out[k] |= ndimage.distance_transform_edt(dil, sampling=spacing_ji) > radius_mm
    return out


def roi_crop(img2d, liver2d, size, min_box=60):
    """The cascade's ROI of one slice: crop to `roi_box`, pixels outside the liver set to 0,
    resized to `size`. Returns (crop [size], box) or None."""
    box = roi_box(liver2d, min_box)
    if box is None:
        return None
    j0, j1, i0, i1 = box
    c = np.where(liver2d[j0:j1, i0:i1], img2d[j0:j1, i0:i1], 0.0).astype(np.float32)
    return resize_image(c[None], size)[0], box


def to_u8(x):
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def preprocess(voxflow, data, case, cache, mr_variant=None, windowed=False):
    """Runs the preprocessing graph once per case; `mr_variant` is None (CT), "n4" or "raw".
    Returns the equalised volume's path, or with `windowed` (CT) the windowed one's."""
    src, _ = case_files(data, case)
    graph, sets, sub = "ct_preprocess.yaml", [], "pre"
    if mr_variant is not None:
        graph, sets, sub = "mri_preprocess.yaml", ["--set", f"n4={str(mr_variant == 'n4').lower()}"], f"pre_mr_{mr_variant}"
    out = os.path.join(cache, sub, f"{case}.nii.gz")
    want = out
    if windowed:
        want = os.path.join(cache, "pre_window", f"{case}.nii.gz")
        os.makedirs(os.path.dirname(want), exist_ok=True)
        sets = ["--set", "windowed=true", "--set", f"windowed_output={want}"]
    if not os.path.exists(want):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        t0 = time.time()
        subprocess.run([voxflow, "-q", "run", os.path.join(ROOT, "graphs", graph),
                        "--set", f"input={src}", "--set", f"output={out}"] + sets, check=True)
        print(f"  voxflow {graph} {case}: {time.time() - t0:.1f} s", flush=True)
    return want


HELD_OUT_HEALTHY = ("btcv0008", "btcv0022", "btcv0025")


def prepare_host(voxflow, data, case, cache):
    """Writes .cache/train/hosts/CASE.npz (see the module doc, step 4)."""
    if case in HELD_OUT_HEALTHY:
        sys.exit(f"prepare: {case} is a held-out healthy liver: no tumours are drawn into it")
    path = os.path.join(cache, "hosts", f"{case}.npz")
    if os.path.exists(path):
        return
    win = preprocess(voxflow, data, case, cache, windowed=True)
    w = load_kji(win).astype(np.float32)
    lab_path = case_files(data, case)[1]
    lab = load_kji(lab_path)
    if w.shape != lab.shape:
        sys.exit(f"prepare: {case}: windowed shape {w.shape} != label shape {lab.shape}")
    if (lab == 2).any():
        sys.exit(f"prepare: {case}: {lab_path} has lesion voxels; a tumour host must be a healthy liver")
    ks = np.flatnonzero((lab == 1).any(axis=(1, 2)))
    if ks.size == 0:
        sys.exit(f"prepare: {case}: {lab_path} has no liver")
    k0, k1 = int(ks[0]), int(ks[-1]) + 1
    zooms = nib.load(win).header.get_zooms()[:3]
    spacing = np.array([zooms[2], zooms[1], zooms[0]], dtype=np.float64)  # (k, j, i) in mm
    hu = np.rint(w[k0:k1] * 500.0 - 100.0).astype(np.int16)  # hu_window -100..400, scale unit
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez_compressed(path + ".tmp.npz", hu=hu, liver=(lab[k0:k1] == 1).astype(np.uint8), spacing=spacing,
                        k0=k0, shape=np.array(w.shape))
    os.replace(path + ".tmp.npz", path)
    print(f"prepared host {case}: slices {k0}..{k1 - 1} of {w.shape}, spacing {spacing.round(3).tolist()} mm", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voxflow", default=os.environ.get("VOXFLOW_BIN", "/tmp/target-training/release/voxflow"))
    ap.add_argument("--data", default=os.environ.get("VOXFLOW_DATA", os.path.join(ROOT, "..", "shared", "data")))
    ap.add_argument("--cache", default=os.path.join(ROOT, ".cache", "train"))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--modality", choices=["ct", "mr"], default="ct")
    ap.add_argument("--no-n4", action="store_true", help="MR: skip N4 (for the with/without-N4 comparison)")
    ap.add_argument("--cases", nargs="*")
    ap.add_argument("--roi", action="store_true", help="also write the liver ROIs (lesion network)")
    ap.add_argument("--min-box", type=int, default=60)
    ap.add_argument("--roi-close-mm", type=float, default=0.0,
                    help="ROIs masked by the liver closed per slice by this radius, as crop_resample's close_mm "
                         "(roi{SIZE}[_window]_close{R}/)")
    ap.add_argument("--roi-input", choices=["equalized", "window"], default="equalized",
                    help="CT ROIs from the equalised volume or from the windowed one in [0, 1] (roi{SIZE}_window/)")
    ap.add_argument("--hosts", action="store_true", help="write tumour hosts (healthy CT livers) for train.py's synth section")
    a = ap.parse_args()
    if a.hosts:
        if a.modality != "ct" or a.roi or not a.cases:
            sys.exit("prepare: --hosts is for CT, with --cases (healthy livers), without --roi")
        for case in a.cases:
            prepare_host(a.voxflow, a.data, case, a.cache)
        return
    mr_variant = None if a.modality == "ct" else ("raw" if a.no_n4 else "n4")
    if a.roi_input == "window" and (mr_variant is not None or not a.roi):
        sys.exit("prepare: --roi-input window is for CT ROIs (--roi)")
    if a.cases is None:
        a.cases = CASES_CT if mr_variant is None else CASES_MR
    if not os.path.exists(a.voxflow):
        sys.exit(f"prepare: voxflow binary {a.voxflow} not found (build it: CARGO_TARGET_DIR=/tmp/target-training cargo build --release)")
    size = (a.size, a.size)
    for case in a.cases:
        sl_dir = f"slices{a.size}" if mr_variant is None else f"mr{a.size}_{mr_variant}"
        sl_path = os.path.join(a.cache, sl_dir, f"{case}.npz")
        roi_dir = f"roi{a.size}" + ("_window" if a.roi_input == "window" else "") + (
            f"_close{a.roi_close_mm:g}" if a.roi_close_mm else "")
        roi_path = os.path.join(a.cache, roi_dir, f"{case}.npz")
        if os.path.exists(sl_path) and (not a.roi or os.path.exists(roi_path)):
            continue
        pre = preprocess(a.voxflow, a.data, case, a.cache, mr_variant)
        img = load_kji(pre).astype(np.float32)
        roi_img = img
        if a.roi_input == "window":
            roi_img = load_kji(preprocess(a.voxflow, a.data, case, a.cache, windowed=True)).astype(np.float32)
        lab = load_kji(case_files(a.data, case)[1]).astype(np.uint8)
        if img.shape != lab.shape:
            sys.exit(f"prepare: {case}: preprocessed shape {img.shape} != label shape {lab.shape}")
        if not os.path.exists(sl_path):
            os.makedirs(os.path.dirname(sl_path), exist_ok=True)
            liver = (lab >= 1).astype(np.uint8)
            np.savez_compressed(sl_path + ".tmp.npz", img=to_u8(resize_image(img, size)),
                                lab=resize_label(liver, size, 2), shape=np.array(img.shape))
            os.replace(sl_path + ".tmp.npz", sl_path)
        if a.roi and not os.path.exists(roi_path):
            os.makedirs(os.path.dirname(roi_path), exist_ok=True)
            imgs, labs, boxes, ks = [], [], [], []
            mask = lab >= 1
            if a.roi_close_mm:
                zooms = nib.load(case_files(a.data, case)[1]).header.get_zooms()
                mask = close_slices(mask, a.roi_close_mm, (zooms[1], zooms[0]))
            for k in range(img.shape[0]):
                r = roi_crop(roi_img[k], mask[k], size, a.min_box)
                if r is None:
                    continue
                crop, box = r
                j0, j1, i0, i1 = box
                lesion = (lab[k, j0:j1, i0:i1] == 2).astype(np.uint8)
                imgs.append(to_u8(crop))
                labs.append(resize_label(lesion[None], size, 2)[0])
                boxes.append(box)
                ks.append(k)
            # The liver level of the case (train.py shifts it to a model's `liver_level:V`).
            liver_median = float(np.median(roi_img[mask]))
            print(f"  {case}: median of the ROI input over the liver {liver_median:.4f}", flush=True)
            np.savez_compressed(roi_path + ".tmp.npz", img=np.array(imgs), lab=np.array(labs),
                                box=np.array(boxes), k=np.array(ks), shape=np.array(img.shape),
                                liver_median=liver_median)
            os.replace(roi_path + ".tmp.npz", roi_path)
        print(f"prepared {case}: {img.shape}", flush=True)


if __name__ == "__main__":
    main()
