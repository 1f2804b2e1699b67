#!/usr/bin/env python3
"""Random-volume sweep: PyRadiomics 3.0.1 (in-process extractor, default settings) vs
examples/bench_radiomics.rs on N seeded synthetic volumes; writes only under OUT (default /tmp).

usage (repository root, after `cargo build --release --example bench_radiomics -p voxflow-radiomics`
with CARGO_TARGET_DIR=/tmp/target-radiomics):
    .venv-oracles/bin/python nodes/kernels/radiomics/scripts/random_sweep.py [--n 40] [--out /tmp/rad/sweep]
Exit status 1 if any case has a feature outside 1e-4 relative / 1e-6 absolute.
"""
import argparse, json, logging, os, subprocess, sys
import numpy as np
import SimpleITK as sitk
import radiomics
from radiomics import featureextractor

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=40)
ap.add_argument("--seed", type=int, default=7)
ap.add_argument("--out", default="/tmp/rad/sweep")
ap.add_argument("--bench", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "/tmp/target-radiomics"),
                                                "release/examples/bench_radiomics"))
a = ap.parse_args()
radiomics.setVerbosity(logging.ERROR)
rng = np.random.default_rng(a.seed)
ex = featureextractor.RadiomicsFeatureExtractor()
compare = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compare.py")
failed = 0
for c in range(a.n):
    shape = tuple(int(s) for s in rng.integers(4, 20, 3))
    sp = tuple(float(s) for s in np.round(rng.uniform(0.3, 3.0, 3), 3))
    kind = c % 4
    if kind == 0:
        img = rng.normal(20, 60, shape).round().astype(np.int16)
    elif kind == 1:
        img = (rng.normal(0, 300, shape) / 7).astype(np.float32)
    elif kind == 2:
        img = rng.integers(-1024, 1500, shape).astype(np.int16)
    else:
        img = np.full(shape, 17, np.int16)
        img += (rng.random(shape) < 0.1).astype(np.int16) * 30
    m = rng.random(shape) < rng.uniform(0.05, 0.9)
    if c % 3 == 0:  # one ellipsoid
        k, j, i = np.indices(shape)
        cc = [rng.uniform(0, s) for s in shape]
        r = [rng.uniform(1, s) for s in shape]
        m = sum(((x - y) / q) ** 2 for x, y, q in zip((k, j, i), cc, r)) <= 1
    d = os.path.join(a.out, str(c))
    os.makedirs(d, exist_ok=True)
    img.astype("<f4").tofile(d + "/image.f32")
    m.astype("u1").tofile(d + "/mask.u8")
    json.dump({"shape": list(shape), "spacing": list(sp)}, open(d + "/meta.json", "w"))
    im = sitk.GetImageFromArray(img); im.SetSpacing(sp[::-1])
    mk = sitk.GetImageFromArray(m.astype(np.uint8)); mk.SetSpacing(sp[::-1])
    try:
        r = ex.execute(im, mk, label=1)
    except Exception as e:  # PyRadiomics refuses the ROI: Rust must refuse it too
        p = subprocess.run([a.bench, d, "--repeat", "1"], capture_output=True, text=True)
        ok = p.returncode != 0
        failed += not ok
        print(c, "oracle error:", str(e)[:60], "| rust", "error too" if ok else "MISSING ERROR")
        continue
    feats = {k: float(v) for k, v in r.items() if not k.startswith("diagnostics")}
    json.dump({"features": feats}, open(d + "/oracle.json", "w"))
    subprocess.run([a.bench, d, "--repeat", "1", "--json", d + "/rust.json"], check=True, capture_output=True)
    p = subprocess.run([sys.executable, compare, d + "/oracle.json", d + "/rust.json"], capture_output=True, text=True)
    failed += p.returncode != 0
    print(c, shape, sp, int(m.sum()), "voxels:", p.stdout.strip().splitlines()[-1])
print(f"{a.n - failed}/{a.n} cases match")
sys.exit(1 if failed else 0)
