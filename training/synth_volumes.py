#!/usr/bin/env python3
"""Whole CT volumes with synthetic tumours (training/synth_tumor.py) and their labels, as NIfTI:
the validation set on which the CT graph's false-lesion params are chosen (issue 17 item 4),
so that no IRCADb patient decides them. Hosts are healthy BTCV livers kept out of the lesion
models' training (BTCV 0024, 0029); BTCV 0008/0022/0025 are refused (the healthy check).

  .venv-train/bin/python training/synth_volumes.py btcv0024 btcv0029 --seeds 1 2 3 --out out/synth_val

Writes OUT/CASE_sSEED_ct.nii.gz (HU, int16) and OUT/CASE_sSEED_label.nii.gz (0, 1 liver,
2 tumour) with the host's header, and OUT/manifest.csv (id,pred,truth for `voxflow eval`, pred =
OUT/pred/ID.nii.gz). Derived from licensed scans: out/ only, never commit.
"""
import argparse
import os
import sys

import nibabel as nib
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synth_tumor import DEFAULT_CONFIG, Host, load_config, synthesize  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
HEALTHY_CHECK = {"btcv0008", "btcv0022", "btcv0025"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="+", help="BTCV cases of VOXFLOW_DATA (CASE_ct/label.nii.gz)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[1])
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", default=DEFAULT_CONFIG)
    ap.add_argument("--data", default=os.environ.get("VOXFLOW_DATA", os.path.join(ROOT, "..", "shared", "data")))
    a = ap.parse_args()
    bad = sorted(set(a.cases) & HEALTHY_CHECK)
    if bad:
        sys.exit(f"synth_volumes: {', '.join(bad)} are the healthy-liver check; they never get synthetic tumours")
    cfg = load_config(a.config)
    os.makedirs(a.out, exist_ok=True)
    rows = ["id,pred,truth"]
    for case in a.cases:
        img = nib.load(os.path.join(a.data, f"{case}_ct.nii.gz"))
        lab = np.asarray(nib.load(os.path.join(a.data, f"{case}_label.nii.gz")).dataobj)
        if np.any(lab > 1):
            sys.exit(f"synth_volumes: {case}'s label has classes above liver; a host must be a healthy liver")
        ct = np.asarray(img.dataobj, dtype=np.float32)
        host = Host(ct, lab == 1, img.header.get_zooms()[:3], cfg)
        for seed in a.seeds:
            # At least one tumour per volume: a healthy draw teaches nothing about detection here.
            rng = np.random.default_rng([seed, int(case[-4:])])
            w = np.asarray(cfg["tumours_per_liver"], dtype=np.float64)
            count = int(rng.choice(len(w), p=w / w.sum())) + 1
            box_hu, box_label, tumours = synthesize(host, cfg, rng, count)  # on the host's liver box
            hu, label = ct.copy(), (lab == 1).astype(np.uint8)
            hu[host.box], label[host.box] = box_hu, box_label
            vid = f"{case}_s{seed}"
            hdr = img.header.copy()
            hdr.set_data_dtype(np.int16)
            hdr.set_slope_inter(1.0, 0.0)
            nib.save(nib.Nifti1Image(np.round(hu).astype(np.int16), img.affine, hdr),
                     os.path.join(a.out, f"{vid}_ct.nii.gz"))
            lh = img.header.copy()
            lh.set_data_dtype(np.uint8)
            lh.set_slope_inter(1.0, 0.0)
            nib.save(nib.Nifti1Image(label, img.affine, lh), os.path.join(a.out, f"{vid}_label.nii.gz"))
            ml = [round(t["voxels"] * float(np.prod(host.spacing)) / 1000.0, 2) for t in tumours]
            print(f"{vid}: {len(tumours)} tumours, mL {ml}", flush=True)
            rows.append(f"{vid},pred/{vid}.nii.gz,{vid}_label.nii.gz")
    with open(os.path.join(a.out, "manifest.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
