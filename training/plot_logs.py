#!/usr/bin/env python3
"""Draws training-loss curves (log scale, per epoch) from models/logs/*.tsv into one PNG with
Pillow alone (no plotting library in .venv-train).

  .venv-train/bin/python training/plot_logs.py models/logs/ct_liver.tsv models/logs/ct_lesion.tsv ... --out models/logs/loss.png
"""
import argparse
import math
import os

from PIL import Image, ImageDraw

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
          (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (0, 0, 0)]


def read(path):
    rows = [line.rstrip("\n").split("\t") for line in open(path)]
    head, rows = rows[0], rows[1:]
    x, y = head.index("minutes"), head.index("train_loss")
    return [(float(r[x]), float(r[y])) for r in rows if r and r[y]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("logs", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="training loss per epoch (class-balanced cross entropy)")
    a = ap.parse_args()
    series = [(os.path.splitext(os.path.relpath(p, "models/logs"))[0], read(p)) for p in a.logs]
    series = [(n, s) for n, s in series if s]
    W, H, L, R, T, B = 900, 520, 70, 260, 40, 50
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    xmax = max(x for _, s in series for x, _ in s)
    ys = [y for _, s in series for _, y in s]
    lo, hi = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    px = lambda x: L + (W - L - R) * x / xmax
    py = lambda y: T + (H - T - B) * (hi - math.log10(y)) / (hi - lo)
    d.rectangle([L, T, W - R, H - B], outline="black")
    for e in range(lo, hi + 1):
        d.line([L, py(10 ** e), W - R, py(10 ** e)], fill=(220, 220, 220))
        d.text((8, py(10 ** e) - 6), f"1e{e}", fill="black")
    for i in range(6):
        x = xmax * i / 5
        d.text((px(x) - 10, H - B + 8), f"{x:.1f}", fill="black")
    d.text(((L + W - R) // 2 - 60, H - 22), "minutes of training", fill="black")
    d.text((L, 12), a.title, fill="black")
    for i, (name, s) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        d.line([(px(x), py(y)) for x, y in s], fill=c, width=2)
        d.line([W - R + 12, T + 8 + 18 * i, W - R + 32, T + 8 + 18 * i], fill=c, width=3)
        d.text((W - R + 38, T + 2 + 18 * i), name, fill="black")
    img.save(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
