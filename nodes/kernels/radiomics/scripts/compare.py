#!/usr/bin/env python3
"""Compare Rust features (examples/bench_radiomics.rs --json) with radiomics_oracle.py output.

usage: compare.py ORACLE.json RUST.json [--rtol 1e-4 --atol 1e-6]
Prints the max relative error per feature class and every feature outside tolerance
(|r - o| <= atol or |r - o| <= rtol * |o|). Exit status 1 if any is outside or missing.
"""
import argparse, json, math, sys

ap = argparse.ArgumentParser()
ap.add_argument("oracle"); ap.add_argument("rust")
ap.add_argument("--rtol", type=float, default=1e-4); ap.add_argument("--atol", type=float, default=1e-6)
a = ap.parse_args()
o = json.load(open(a.oracle))["features"]
r = json.load(open(a.rust))["features"]
bad, worst = [], {}
if list(o) != list(r):
    print("name/order mismatch:", [k for k in o if k not in r], [k for k in r if k not in o])
    bad.append("order")
for k, ov in o.items():
    cls = k.split("_")[1]
    if k not in r:
        bad.append(k); print("MISSING", k); continue
    rv = r[k]  # NaN is written as null by serde_json
    o_nan, r_nan = math.isnan(ov), rv is None or math.isnan(rv)
    if o_nan or r_nan:
        if o_nan != r_nan:
            bad.append(k); print("NaN mismatch", k, ov, rv)
        continue
    err = abs(rv - ov)
    rel = err / abs(ov) if ov != 0 else (0.0 if err == 0 else math.inf)
    if err > a.atol and err > a.rtol * abs(ov):
        bad.append(k); print(f"FAIL {k}: oracle {ov!r} rust {rv!r} rel {rel:.3g}")
    w = worst.get(cls, (0.0, "", 0.0))
    relc = rel if abs(ov) > a.atol else 0.0  # near-zero values count by absolute error
    if relc >= w[0]:
        worst[cls] = (relc, k, err)
for cls, (rel, k, err) in worst.items():
    print(f"{cls:11s} max rel err {rel:.2e} ({k.split('_', 2)[2]}, abs {err:.2e})")
print(f"{len(o)} features, {len(bad)} outside tolerance")
sys.exit(1 if bad else 0)
