#!/usr/bin/env python3
"""Before/after pictures of synthetic tumours (training/synth_tumor.py), so a reader can judge
their realism: per case, the axial slice through each of the largest tumours, windowed, as
[before | after | after with the tumour outline], one PNG per case.

  .venv-train/bin/python training/render_synth.py btcv0001 btcv0005 --out out/synth
  .venv-train/bin/python training/render_synth.py --ct phantom.nii.gz --label phantom_label.nii.gz --out docs/img/x.png

Pictures of licensed scans go to out/ (git-ignored) only; never commit them.
"""
import argparse
import os
import sys

import nibabel as nib
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synth_tumor import DEFAULT_CONFIG, Host, load_config, synthesize  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def window_u8(hu, lo, hi):
    return (np.clip((hu - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def outline(mask):
    """Pixels of `mask` with a 4-neighbour outside it."""
    m = np.pad(mask, 1)
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask & ~inner


def panel(before, after, label, k, window, zoom, aspect):
    """One row: before | after | after + outline, of slice k (arrays are NIfTI (i, j, k)); the
    slice is shown with rows = j (LPS arrays: anterior up), scaled `zoom` x (`aspect`: j / i mm)."""
    def sl(a):
        return a[:, :, k].T
    b, a, lab = window_u8(sl(before), *window), window_u8(sl(after), *window), sl(label)
    rgb = np.stack([a, a, a], axis=-1)
    rgb[outline(lab == 2)] = (255, 60, 60)
    row = np.concatenate([np.stack([b, b, b], -1), np.stack([a, a, a], -1), rgb], axis=1)
    h, w = row.shape[:2]
    return Image.fromarray(row).resize((int(w * zoom), int(h * zoom * aspect)), Image.BILINEAR)


def render(ct_path, label_path, cfg, seed, out_png, slices, window, count=None, zoom=2.0):
    img = nib.load(ct_path)
    hu = np.asarray(img.dataobj, dtype=np.float32)
    lab = np.asarray(nib.load(label_path).dataobj)
    sp = [float(z) for z in img.header.get_zooms()[:3]]
    host = Host(hu, lab == 1, sp, cfg)
    before, after, label, tumours = host.hu, *synthesize(host, cfg, np.random.default_rng(seed), count)
    for t in tumours:
        print(f"  {t['class']:6s} r {t['radius_mm']:5.1f} mm, {t['voxels']:6d} voxels, "
              f"delta {t['delta_hu']:+.0f} HU, mass {t['mass_effect']:.2f}, rim {t['rim_hu']}")
    ks = []
    for t in sorted(tumours, key=lambda t: -t["voxels"]):
        k = int(t["centre"][2])
        if k not in ks:
            ks.append(k)
        if len(ks) == slices:
            break
    if not ks:
        ks = [int(np.argmax(host.liver.sum(axis=(0, 1))))]
    rows = [panel(before, after, label, k, window, zoom, sp[1] / sp[0]) for k in ks]
    w = max(r.width for r in rows)
    sheet = Image.new("RGB", (w, sum(r.height for r in rows)))
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    sheet.save(out_png, optimize=True)
    print(f"wrote {out_png} ({len(tumours)} tumours, slices {ks})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*", help="cases of VOXFLOW_DATA (CASE_ct.nii.gz + CASE_label.nii.gz)")
    ap.add_argument("--ct", help="a CT NIfTI (HU) instead of cases")
    ap.add_argument("--label", help="its label NIfTI (1 = liver)")
    ap.add_argument("--data", default=os.environ.get("VOXFLOW_DATA", os.path.join(ROOT, "..", "shared", "data")))
    ap.add_argument("--config", default=DEFAULT_CONFIG)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--slices", type=int, default=2)
    ap.add_argument("--window", type=float, nargs=2, default=(-100.0, 400.0), help="HU window (default: the lesion network's)")
    ap.add_argument("--zoom", type=float, default=2.0)
    ap.add_argument("--count", type=int, help="this many tumours per liver (default: drawn from the config)")
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "synth"), help="folder (cases) or PNG (--ct)")
    a = ap.parse_args()
    cfg = load_config(a.config)
    if a.ct:
        if not a.label:
            sys.exit("render_synth: --ct needs --label")
        render(a.ct, a.label, cfg, a.seed, a.out, a.slices, a.window, a.count, a.zoom)
        return
    for case in a.cases:
        if case in ("btcv0008", "btcv0022", "btcv0025"):
            sys.exit(f"render_synth: {case} is a held-out healthy-liver check, kept out of all synthesis")
        render(os.path.join(a.data, f"{case}_ct.nii.gz"), os.path.join(a.data, f"{case}_label.nii.gz"), cfg,
               a.seed, os.path.join(a.out, f"{case}_seed{a.seed}.png"), a.slices, a.window, a.count, a.zoom)


if __name__ == "__main__":
    main()
