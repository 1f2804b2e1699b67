#!/usr/bin/env bash
# Python onnxruntime vs voxflow-onnx (examples/bench_onnx.rs) on the same model and input, back to back.
# usage (repo root): bash nodes/kernels/onnx/bench/bench.sh MODEL [BATCH] [THREADS] [SLICES]
# Needs .venv (scripts/setup-ort.sh) and .venv-oracles (nibabel, cv2) for the input step.
# Input: synthetic CT from ../shared/oracles/make_synthetic.py in /tmp/synth (made if missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)"
MODEL="$1"; BATCH="${2:-8}"; THREADS="${3:-2}"; SLICES="${4:-64}"
TMP="${BENCH_TMP:-/tmp/voxflow-onnx-bench}"; mkdir -p "$TMP"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/target-onnx}"
HERE="$ROOT/nodes/kernels/onnx/bench"
ORACLES="${ORACLES:-$ROOT/../shared/oracles}"

[ -f /tmp/synth/ct.nii.gz ] || "$ROOT/.venv-oracles/bin/python" "$ORACLES/make_synthetic.py" /tmp/synth --ct-only
read -r H W < <("$ROOT/.venv/bin/python" -c "
import onnx,sys; m={p.key:p.value for p in onnx.load(sys.argv[1], load_external_data=False).metadata_props}
print(*m['voxflow.input_size'].split(','))" "$MODEL")
INPUT="$TMP/ct_${H}x${W}.f32"
[ -f "$INPUT" ] || "$ROOT/.venv-oracles/bin/python" "$HERE/prep_input.py" /tmp/synth/ct.nii.gz "$H" "$W" "$INPUT" --slices 64
(cd "$ROOT" && cargo build -q --release --example bench_onnx -p voxflow-onnx)

echo "# $(date -u +%FT%TZ) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg) (shared machine)"
run() {
    local name="$1"; shift
    /usr/bin/time -v "$@" > "$TMP/$name.json" 2> "$TMP/$name.time"
    local wall rss
    wall=$(grep "Elapsed (wall clock)" "$TMP/$name.time" | awk '{print $NF}')
    rss=$(grep "Maximum resident set size" "$TMP/$name.time" | awk '{print $NF}')
    echo "$(cat "$TMP/$name.json") wall=$wall peak_rss_kb=$rss"
}
run python-ort "$ROOT/.venv/bin/python" "$HERE/bench_ort.py" "$MODEL" --input "$INPUT" --batch "$BATCH" --threads "$THREADS" --slices "$SLICES"
run rust-ort "$CARGO_TARGET_DIR/release/examples/bench_onnx" "$MODEL" --input "$INPUT" --batch "$BATCH" --threads "$THREADS" --slices "$SLICES"
