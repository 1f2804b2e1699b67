#!/usr/bin/env bash
# Oracle (numpy/scipy `reference` of metrics.py) vs voxflow-metrics on the same synthetic
# 512x512x100 gt/pred pair, liver (label >= 1) and lesion (label == 2), back to back.
# Prints in-library compute time, process wall time and peak RSS of both, and the values.
#
# usage (from the repository root): bash nodes/kernels/metrics/bench.sh [WORKDIR] [REPEATS]
# WORKDIR (default /tmp/metrics-bench) receives the synthetic data and raw copies; nothing
# is written to the repository. GT=... PRED=... (NIfTI label maps) replace the synthetic pair.
set -euo pipefail
W=${1:-/tmp/metrics-bench}
REPS=${2:-5}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
PY=${PY:-$ROOT/.venv-oracles/bin/python}
ORA=${ORACLES:-/work/shared/oracles}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-metrics}
mkdir -p "$W"
if [ -z "${GT:-}" ]; then
  [ -f "$W/synth/pred.nii.gz" ] || "$PY" "$ORA/make_synthetic.py" "$W/synth" --ct-only >/dev/null
  GT=$W/synth/gt.nii.gz PRED=$W/synth/pred.nii.gz
fi
# raw uint8 copies in (k, j, i) order for the Rust bench
"$PY" - "$W" "$GT" "$PRED" <<'PYEOF'
import json, sys, numpy as np, nibabel as nib
w = sys.argv[1]
for n, path in (("gt", sys.argv[2]), ("pred", sys.argv[3])):
    im = nib.load(path)
    a = np.asanyarray(im.dataobj).astype(np.uint8).transpose(2, 1, 0)
    np.ascontiguousarray(a).tofile(f"{w}/{n}.u8")
sp = [float(z) for z in im.header.get_zooms()[:3]][::-1]
json.dump({"shape": list(a.shape), "spacing": sp}, open(f"{w}/meta.json", "w"))
PYEOF
(cd "$ROOT" && cargo build --release --example bench_metrics -p voxflow-metrics -q)
BIN=$CARGO_TARGET_DIR/release/examples/bench_metrics

echo "# $GT vs $PRED; machine: $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for c in "liver 1 --ge" "lesion 2"; do
  set -- $c
  /usr/bin/time -v "$PY" "$ORA/metrics.py" "$GT" "$PRED" \
      --label "$2" ${3:-} --libs reference >"$W/ref_$1.json" 2>"$W/ref_$1.time"
done
/usr/bin/time -v "$BIN" "$W" "$REPS" >"$W/rust.json" 2>"$W/rust.time"
echo "# after: load average: $(cut -d' ' -f1-3 /proc/loadavg)"

"$PY" - "$W" <<'PYEOF'
import json, re, sys
w = sys.argv[1]
def tv(f):
    t = open(f).read()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (.*)", t).group(1)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
    m, s = wall.split(":")[-2:]
    return float(m) * 60 + float(s), rss / 1024
rust = json.load(open(f"{w}/rust.json"))
rw, rr = tv(f"{w}/rust.time")
print(f"rust bench process (both classes, {rust['repeats']} repeats each + components/detection): "
      f"wall {rw:.2f} s, peak RSS {rr:.0f} MB, threads {rust['threads']}")
keys = [("dice", "dice"), ("voe", "voe"), ("rvd", "rvd"), ("asd", "asd_mm"), ("msd", "msd_mm"), ("hd95_pooled", "hd95_mm")]
worst = 0.0
for c in ("liver", "lesion"):
    ref = json.load(open(f"{w}/ref_{c}.json"))["libs"]["reference"]
    ow, orss = tv(f"{w}/ref_{c}.time")
    rs = rust[f"{c}_seconds"]
    print(f"{c}: oracle reference {ref['seconds']:.3f} s in-lib (process wall {ow:.2f} s, peak RSS {orss:.0f} MB)"
          f" | rust binary_metrics best {rs['metrics_best']:.3f} s, median {rs['metrics_median']:.3f} s"
          f" | speed-up (oracle in-lib / rust median) {ref['seconds'] / rs['metrics_median']:.1f}x")
    for a, b in keys:
        x, y = ref[a], rust[c][b]
        rel = abs(x - y) / max(abs(x), 1e-12)
        worst = max(worst, rel)
        print(f"   {b:8s} oracle {x:.12g}  rust {y:.12g}  rel.diff {rel:.1e}")
    print(f"   surface voxels oracle pred/gt {ref['n_surface_vox_pred']}/{ref['n_surface_vox_gt']}"
          f"  rust {rust[c]['pred_surface_voxels']}/{rust[c]['truth_surface_voxels']}")
print("lesion detection:", json.dumps(rust["lesion_detection"]), rust["lesion_detection_seconds"])
print("liver label_components(26):", rust["label_components_26_seconds"], " largest_component:", rust["largest_component_seconds"])
print(f"max relative difference over all values: {worst:.1e}", "OK" if worst <= 1e-6 else "MISMATCH")
PYEOF
