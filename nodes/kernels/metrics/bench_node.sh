#!/usr/bin/env bash
# The `metrics` node (graphs/eval_ct.yaml: read both label files, liver + lesion metrics and
# lesion detection, JSON + CSV) vs the numpy/scipy `reference` of metrics.py (liver, then
# lesion), on the synthetic 512x512x100 gt/pred pair of make_synthetic.py, back to back.
#
# usage (from the repository root): bash nodes/kernels/metrics/bench_node.sh [WORKDIR] [REPEATS]
# WORKDIR (default /tmp/metricsnode-bench) receives the data and outputs; nothing is written to
# the repository. GT=... PRED=... (NIfTI label maps) replace the synthetic pair.
set -euo pipefail
W=${1:-/tmp/metricsnode-bench}
REPS=${2:-3}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
PY=${PY:-$ROOT/.venv-oracles/bin/python}
ORA=${ORACLES:-/work/shared/oracles}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-metricsnode}
mkdir -p "$W"
if [ -z "${GT:-}" ]; then
  [ -f "$W/synth/pred.nii.gz" ] || "$PY" "$ORA/make_synthetic.py" "$W/synth" --ct-only >/dev/null
  GT=$W/synth/gt.nii.gz PRED=$W/synth/pred.nii.gz
fi
BIN=${VOXFLOW_BIN:-}   # a voxflow binary to use instead of building one
if [ -z "$BIN" ]; then
  (cd "$ROOT" && cargo build --release --bin voxflow -q)
  BIN=$CARGO_TARGET_DIR/release/voxflow
fi

echo "# $GT vs $PRED; machine: $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for c in "liver 1 --ge" "lesion 2"; do
  set -- $c
  /usr/bin/time -v "$PY" "$ORA/metrics.py" "$GT" "$PRED" \
      --label "$2" ${3:-} --libs reference >"$W/ref_$1.json" 2>"$W/ref_$1.time"
done
for r in $(seq 1 "$REPS"); do
  /usr/bin/time -v "$BIN" -q run "$ROOT/graphs/eval_ct.yaml" --set "pred=$PRED" --set "truth=$GT" \
      --set "json=$W/node.json" --set "csv=$W/node.csv" --report "$W/report_$r.json" 2>"$W/node_$r.time"
done
echo "# after: load average: $(cut -d' ' -f1-3 /proc/loadavg)"

"$PY" - "$W" "$REPS" <<'PYEOF'
import json, re, statistics, sys
w, reps = sys.argv[1], int(sys.argv[2])
def tv(f):
    t = open(f).read()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (.*)", t).group(1)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
    m, s = wall.split(":")[-2:]
    return float(m) * 60 + float(s), rss / 1024
busy, walls, rss = [], [], []
for r in range(1, reps + 1):
    rep = json.load(open(f"{w}/report_{r}.json"))
    node = next(n for n in rep["nodes"] if n["kind"] == "metrics")
    busy.append(node["busy_ms"] / 1000)
    pw, pr = tv(f"{w}/node_{r}.time")
    walls.append(pw); rss.append(pr)
node = json.load(open(f"{w}/node.json"))
ref = {c: json.load(open(f"{w}/ref_{c}.json"))["libs"]["reference"] for c in ("liver", "lesion")}
ref_s = sum(ref[c]["seconds"] for c in ref)
ref_wall = sum(tv(f"{w}/ref_{c}.time")[0] for c in ref)
ref_rss = max(tv(f"{w}/ref_{c}.time")[1] for c in ref)
mb = statistics.median(busy)
print(f"oracle reference, liver + lesion: in-lib {ref_s:.3f} s (liver {ref['liver']['seconds']:.3f}, lesion {ref['lesion']['seconds']:.3f}); "
      f"process wall {ref_wall:.2f} s, peak RSS {ref_rss:.0f} MB")
print(f"metrics node busy (both classes + detection + JSON/CSV), {reps} runs: median {mb:.3f} s, "
      f"min {min(busy):.3f} s; whole `voxflow run` wall median {statistics.median(walls):.2f} s "
      f"(incl. reading both .nii.gz), peak RSS {max(rss):.0f} MB")
print(f"speed-up (oracle in-lib / node busy median): {ref_s / mb:.1f}x; "
      f"(oracle process walls / voxflow run wall): {ref_wall / statistics.median(walls):.1f}x")
worst = 0.0
for c in ("liver", "lesion"):
    for a, b in [("dice", "dice"), ("voe", "voe"), ("rvd", "rvd"), ("asd", "asd_mm"), ("msd", "msd_mm"), ("hd95_pooled", "hd95_mm")]:
        x, y = ref[c][a], node[c][b]
        rel = abs(x - y) / max(abs(x), 1e-12)
        worst = max(worst, rel)
        print(f"   {c:6s} {b:8s} oracle {x:.12g}  node {y:.12g}  rel.diff {rel:.1e}")
print("lesion detection:", {k: node["lesion"]["detection"][k] for k in ("true_positive", "false_positive", "missed", "truth_lesions")})
print(f"max relative difference: {worst:.1e}", "OK" if worst <= 1e-6 else "MISMATCH")
PYEOF
