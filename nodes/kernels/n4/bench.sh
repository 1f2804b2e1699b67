#!/usr/bin/env bash
# Side-by-side N4 benchmark: SimpleITK oracle (n4.py) vs voxflow-n4 (examples/bench_n4.rs), same
# input, same params (shrink 4, 4 x 50 iterations, Otsu mask), back to back.
#
# usage (from the repository root):
#   bash nodes/kernels/n4/bench.sh [IN.nii.gz] [TRUE_BIAS.nii.gz]
# default input: the synthetic 256x256x64 MRI of make_synthetic.py, generated under
# $WORK (default /tmp/n4bench) if missing. Everything is written under $WORK, nothing in the repo.
# Env: PY (oracle python, default .venv-oracles/bin/python), ORACLES (default
# /work/shared/oracles), CARGO_TARGET_DIR (default /tmp/target-n4), THREADS (0 = all cores).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
PY=${PY:-$ROOT/.venv-oracles/bin/python}
ORACLES=${ORACLES:-/work/shared/oracles}
WORK=${WORK:-/tmp/n4bench}
THREADS=${THREADS:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-n4}
mkdir -p "$WORK"

IN=${1:-}
TRUE=${2:-}
if [[ -z "$IN" ]]; then
  if [[ ! -f "$WORK/synth/mri.nii.gz" ]]; then
    "$PY" "$ORACLES/make_synthetic.py" "$WORK/synth" >/dev/null
    rm -f "$WORK"/synth/{prob,c200_prob,ct,c200_ct}.nii.gz
  fi
  IN=$WORK/synth/mri.nii.gz
  TRUE=$WORK/synth/mri_bias.nii.gz
fi

(cd "$ROOT" && cargo build --release --example bench_n4 -p voxflow-n4 -q)
BENCH=$CARGO_TARGET_DIR/release/examples/bench_n4

# NIfTI -> raw f32 (k, j, i) for the Rust bench; prints "shape spacing origin direction" (the
# geometry makes the Rust bench shrink with SimpleITK's sampling phase, see itk_shrink_offsets)
read -r SHAPE SPACING ORIGIN DIRECTION < <("$PY" - "$IN" "$WORK/in.f32" <<'EOF'
import sys, numpy as np, SimpleITK as sitk
img = sitk.ReadImage(sys.argv[1]); a = sitk.GetArrayFromImage(img).astype('<f4'); a.tofile(sys.argv[2])
j = lambda v: ",".join(repr(float(x)) for x in v)
print(",".join(map(str, a.shape)), j(img.GetSpacing()[::-1]), j(img.GetOrigin()), j(img.GetDirection()))
EOF
)
echo "input: $IN  shape (k,j,i) $SHAPE  spacing $SPACING  threads ${THREADS} (0 = all)"
echo "machine: $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"

TARGS=(); [[ "$THREADS" != 0 ]] && TARGS=(--threads "$THREADS")
TB=(); [[ -n "$TRUE" ]] && TB=(--true-bias "$TRUE")

echo "== SimpleITK (n4.py) =="
/usr/bin/time -v "$PY" "$ORACLES/n4.py" "$IN" "$WORK/sitk_corr.nii.gz" --log-bias "$WORK/sitk_lb.nii.gz" \
  --threads "$THREADS" "${TB[@]}" >"$WORK/sitk.json" 2>"$WORK/sitk.time"
cat "$WORK/sitk.json"; echo
grep -E "Elapsed \(wall|Maximum resident" "$WORK/sitk.time"

echo "== voxflow-n4 (examples/bench_n4) =="
/usr/bin/time -v "$BENCH" "$WORK/in.f32" "$SHAPE" --spacing "$SPACING" --origin "$ORIGIN" \
  --direction "$DIRECTION" "${TARGS[@]}" \
  --out-log-bias "$WORK/rs_lb.f32" --out-mask "$WORK/rs_mask.u8" >"$WORK/rs.json" 2>"$WORK/rs.time"
cat "$WORK/rs.json"
grep -E "Elapsed \(wall|Maximum resident" "$WORK/rs.time"

echo "== agreement (inside SimpleITK's Otsu mask) =="
"$PY" - "$IN" "$WORK/sitk_lb.nii.gz" "$WORK/rs_lb.f32" "$WORK/rs_mask.u8" "$TRUE" <<'EOF'
import sys, json, numpy as np, SimpleITK as sitk
img = sitk.Cast(sitk.ReadImage(sys.argv[1]), sitk.sitkFloat32)
a = sitk.GetArrayFromImage(img)
sm = sitk.GetArrayFromImage(sitk.OtsuThreshold(img, 0, 1, 200)) > 0
slb = sitk.GetArrayFromImage(sitk.ReadImage(sys.argv[2]))
lb = np.fromfile(sys.argv[3], '<f4').reshape(a.shape)
m = np.fromfile(sys.argv[4], np.uint8).reshape(a.shape) > 0
sc = a / np.exp(slb); rc = a / np.exp(lb)
r = {"otsu_mask_voxels_differing": int((m != sm).sum()), "mask_voxels": int(sm.sum()),
     "corr_corrected": float(np.corrcoef(rc[sm], sc[sm])[0, 1]),
     "max_abs_log_bias_diff": float(np.abs(lb - slb)[sm].max())}
if len(sys.argv) > 5 and sys.argv[5]:
    tb = sitk.GetArrayFromImage(sitk.ReadImage(sys.argv[5]))
    r["corr_bias_vs_true_rust"] = float(np.corrcoef(np.exp(lb[sm]), tb[sm])[0, 1])
    r["corr_log_bias_vs_true_rust"] = float(np.corrcoef(lb[sm], np.log(tb[sm]))[0, 1])
    r["corr_log_bias_vs_true_sitk"] = float(np.corrcoef(slb[sm], np.log(tb[sm]))[0, 1])
print(json.dumps(r))
EOF
