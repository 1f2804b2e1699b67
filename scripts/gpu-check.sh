#!/usr/bin/env bash
# GPU check of the CT liver/lesion cascade (issue 19): runs graphs/ct_liver_lesion.yaml on one
# real CT with device cuda and device cpu and fails (exit 1) unless
#   - every `fcn` node of the cuda run ran on CUDA (its run-report facts: provider
#     CUDAExecutionProvider), and
#   - the two label volumes differ in at most 0.1 % of the foreground (non-zero) voxels.
# It prints both wall times and the per-node busy times. Anywhere without an NVIDIA GPU and a CUDA
# build of ONNX Runtime it stops with a clear error (exit 2).
#
# usage: bash scripts/gpu-check.sh [CT.nii.gz]
#   CT            default: $VOXFLOW_DATA/ircadb01_ct.nii.gz
#   LIVER_MODEL   default: models/float/ct_liver.onnx   LESION_MODEL  default: models/float/ct_lesion.onnx
#                 (the float models: the shipped int8 ones are made for CPUs; models/README.md)
#   VOXFLOW       the voxflow binary (default: target/release/voxflow, built if missing)
#   ORT_DYLIB_PATH  libonnxruntime.so of a CUDA build, if .venv does not hold one
#                   (`make setup ORT=gpu` installs the onnxruntime-gpu wheel there); the CUDA 13
#                   and cuDNN 9 libraries must be on LD_LIBRARY_PATH (docs/PERFORMANCE.md, GPU).
#   OUT           folder for outputs and run reports (default: a new folder under /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "gpu-check: error: $*" >&2; exit 2; }

command -v nvidia-smi >/dev/null 2>&1 || die "no NVIDIA GPU here (nvidia-smi not found); run this on a GPU machine"
nvidia-smi -L >/dev/null 2>&1 || die "nvidia-smi finds no usable GPU: $(nvidia-smi -L 2>&1 | head -1)"
ORT_LIB="${ORT_DYLIB_PATH:-$(compgen -G ".venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*" | head -1 || true)}"
[ -n "$ORT_LIB" ] && [ -f "$ORT_LIB" ] || die "no ONNX Runtime library (set ORT_DYLIB_PATH, or run make setup ORT=gpu)"
[ -f "$(dirname "$ORT_LIB")/libonnxruntime_providers_cuda.so" ] \
  || die "$ORT_LIB has no CUDA provider beside it (libonnxruntime_providers_cuda.so): a CPU-only build"
export ORT_DYLIB_PATH="$ORT_LIB"

CT="${1:-${VOXFLOW_DATA:-/nonexistent}/ircadb01_ct.nii.gz}"
[ -f "$CT" ] || die "input CT $CT not found (give a path, or set VOXFLOW_DATA)"
LIVER_MODEL="${LIVER_MODEL:-models/float/ct_liver.onnx}"
LESION_MODEL="${LESION_MODEL:-models/float/ct_lesion.onnx}"
for m in "$LIVER_MODEL" "$LESION_MODEL"; do
  [ -f "$m" ] || die "model $m not found (train it, or set LIVER_MODEL / LESION_MODEL)"
done
OUT="${OUT:-$(mktemp -d /tmp/voxflow-gpu-check.XXXXXX)}"
mkdir -p "$OUT"
BIN="${VOXFLOW:-target/release/voxflow}"
if [ ! -x "$BIN" ]; then
  echo "== build"
  cargo build --release --bin voxflow
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

run() {  # device tag
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" -q run graphs/ct_liver_lesion.yaml --report "$OUT/report_$2.json" \
    --set input="$CT" --set output="$OUT/label_$2.nii" --set report=false \
    --set liver_model="$LIVER_MODEL" --set lesion_model="$LESION_MODEL" --set device="$1"
  t1=$(date +%s.%N)
  echo "$2 (device $1): $(awk "BEGIN{printf \"%.2f\", $t1 - $t0}") s wall"
}

echo "== run (the first run also loads the CUDA libraries)"
run cuda warmup
run cpu cpu
run cuda cuda

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
rep = {d: json.load(open(f"{out}/report_{d}.json")) for d in ("cpu", "cuda")}
print("== per-node busy time (s)")
print(f"{'node':10s} {'kind':22s} {'cpu':>8s} {'cuda':>8s}  cuda run on")
nodes = {d: {n["id"]: n for n in rep[d]["nodes"]} for d in rep}
for n in rep["cpu"]["nodes"]:
    c = nodes["cuda"].get(n["id"], {})
    facts = ", ".join(f"{k}: {v}" for k, v in c.get("facts", {}).items())
    print(f"{n['id']:10s} {n['kind']:22s} {n['busy_ms'] / 1000:8.2f} {c.get('busy_ms', 0) / 1000:8.2f}  {facts}")
print(f"{'whole':33s} {rep['cpu']['wall_ms'] / 1000:8.2f} {rep['cuda']['wall_ms'] / 1000:8.2f}")
bad = [n["id"] for n in rep["cuda"]["nodes"] if n["kind"] == "fcn"
       and n.get("facts", {}).get("provider") != "CUDAExecutionProvider"]
if bad:
    sys.exit(f"gpu-check: FAIL: fcn node(s) {bad} did not run on CUDA (run-report facts)")
# Same writer, same header: the uncompressed files have one byte per voxel after vox_offset.
a, b = (open(f"{out}/label_{d}.nii", "rb").read() for d in ("cpu", "cuda"))
off = int(__import__("struct").unpack("<f", a[108:112])[0])
va, vb = a[off:], b[off:]
if len(va) != len(vb):
    sys.exit("gpu-check: FAIL: the cpu and cuda label volumes differ in size")
fg = sum(1 for x, y in zip(va, vb) if x or y)
diff = sum(1 for x, y in zip(va, vb) if x != y)
share = diff / max(fg, 1)
print(f"== labels: {diff} of {fg} foreground voxels differ (cuda vs cpu): {100 * share:.4f} %")
if share > 0.001:
    sys.exit("gpu-check: FAIL: more than 0.1 % of the foreground voxels differ")
print("gpu-check: PASS")
PY
