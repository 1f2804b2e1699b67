#!/usr/bin/env bash
# Throughput of the `fcn` node on a real CT next to the same work in Python (onnxruntime + cv2),
# and the wall time of graphs/ct_liver_lesion.yaml, with random-weight U-Nets of the shipped size.
# usage (repo root): bash nodes/kernels/onnx/bench/bench_cascade.sh [CT.nii.gz] [WIDTH] [BATCH]
# Needs .venv (scripts/setup-ort.sh) and .venv-oracles (nibabel, cv2). Outputs stay in $TMP
# (derived from the scan: never commit them).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)"
CT="${1:-${VOXFLOW_DATA:?set VOXFLOW_DATA or give a CT}/ircadb01_ct.nii.gz}"
WIDTH="${2:-16}"; BATCH="${3:-4}"; THREADS=2
TMP="${BENCH_TMP:-/tmp/voxflow-cascade-bench}"; mkdir -p "$TMP"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/target-cascade}"
HERE="$ROOT/nodes/kernels/onnx/bench"
cd "$ROOT"
# VOXFLOW_BIN: use an existing binary instead of building one.
[ -n "${VOXFLOW_BIN:-}" ] || cargo build -q --release --bin voxflow
BIN="${VOXFLOW_BIN:-$CARGO_TARGET_DIR/release/voxflow}"

LIVER="$TMP/unet256_w$WIDTH.onnx"; LESION="$TMP/unet256_w${WIDTH}_lesion.onnx"
[ -f "$LIVER" ] || .venv/bin/python "$HERE/make_bench_unet.py" "$TMP" --width "$WIDTH" >/dev/null
.venv/bin/python - "$LIVER" "$LESION" <<'PY'
import sys, onnx
m = onnx.load(sys.argv[1])
n = sum(int(__import__("numpy").prod(t.dims)) for t in m.graph.initializer)
for p in m.metadata_props:
    if p.key == "voxflow.classes":
        p.value = "background,lesion"
onnx.save(m, sys.argv[2])
print(f"# model {sys.argv[1]}: {n / 1e6:.2f} M parameters")
PY

echo "# $(date -u +%FT%TZ) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg) (shared machine)"
"$BIN" -q run graphs/ct_preprocess.yaml --set input="$CT" --set output="$TMP/eq.nii.gz"
cat > "$TMP/fcn.yaml" <<YAML
graph: fcn-bench
nodes:
  eq:   { kind: read_volume, path: eq.nii.gz }
  f:    { kind: fcn, in: eq, model: $LIVER, device: cpu, batch: $BATCH, threads: $THREADS }
  am:   { kind: argmax, in: f }
  save: { kind: write_volume, in: am, path: fcn_label.nii.gz }
YAML
report() {  # report.json node -> "wall_ms busy_ms slices"
  .venv/bin/python -c "
import json,sys; r=json.load(open(sys.argv[1])); n=[x for x in r['nodes'] if x['id']==sys.argv[2]][0]
print(f\"{sys.argv[2]}: {n['slices']} slices, busy {n['busy_ms']/1000:.2f} s, {n['slices']/max(n['busy_ms'],1e-9)*1000:.2f} slices/s (graph wall {r['wall_ms']/1000:.2f} s, peak RSS {r['peak_rss_bytes']/2**20:.0f} MiB)\")" "$@"
}
for rep in 1 2; do
  "$BIN" -q run "$TMP/fcn.yaml" --report "$TMP/fcn_report.json"
  echo "voxflow fcn node (run $rep): $(report "$TMP/fcn_report.json" f)"
  PYTHONPATH="$(echo "$ROOT"/.venv/lib/python3*/site-packages)" "$ROOT/.venv-oracles/bin/python" \
    "$HERE/fcn_node_ref.py" "$LIVER" "$TMP/eq.nii.gz" --batch "$BATCH" --threads "$THREADS"
done
for rep in 1 2; do
  "$BIN" -q run graphs/ct_liver_lesion.yaml --report "$TMP/cascade_report.json" \
    --set input="$CT" --set output="$TMP/cascade_label.nii.gz" \
    --set liver_model="$LIVER" --set lesion_model="$LESION" --set device=cpu
  echo "whole graph ct_liver_lesion (run $rep):"
  for n in ct eq liver crop lesion merge save; do echo "  $(report "$TMP/cascade_report.json" $n)"; done
done
