#!/usr/bin/env python3
"""Compares a `voxflow eval --predictions` run with the oracle `reference` of metrics.py.

usage: check_eval_vs_oracle.py MANIFEST OUTDIR [ORACLES_DIR]
MANIFEST: the id,pred,truth CSV given to `voxflow eval` (absolute paths); OUTDIR: its --out.
Runs `metrics.py TRUTH PRED --label 1 --ge` (liver) and `--label 2` (lesion) per case and
prints every value side by side with the largest relative difference. Exit status 1 if any
value differs by more than 1e-6 relative.
"""
import csv, json, os, subprocess, sys

manifest, out = sys.argv[1], sys.argv[2]
ora = sys.argv[3] if len(sys.argv) > 3 else "/work/shared/oracles"
got = {}
with open(os.path.join(out, "metrics.csv")) as f:
    for r in csv.DictReader(f):
        got[(r["id"], r["class"])] = r
keys = [("dice", "dice"), ("voe", "voe"), ("rvd", "rvd"), ("asd_mm", "asd"), ("msd_mm", "msd"), ("hd95_mm", "hd95_pooled")]
worst = 0.0
with open(manifest) as f:
    for case in csv.DictReader(f):
        for cls, args in (("liver", ["--label", "1", "--ge"]), ("lesion", ["--label", "2"])):
            o = subprocess.run([sys.executable, f"{ora}/metrics.py", case["truth"], case["pred"], *args, "--libs", "reference"],
                               check=True, capture_output=True, text=True)
            ref = json.loads(o.stdout)["libs"]["reference"]
            row = got[(case["id"], cls)]
            line = []
            for ours, theirs in keys:
                x, w = float(row[ours]), float(ref[theirs])
                rel = abs(x - w) / max(abs(w), 1e-12)
                worst = max(worst, rel)
                line.append(f"{ours} {x:.10g} (oracle {w:.10g})")
            print(f"{case['id']:16s} {cls:6s} " + ", ".join(line))
print(f"max relative difference: {worst:.1e}", "OK" if worst <= 1e-6 else "MISMATCH")
sys.exit(0 if worst <= 1e-6 else 1)
