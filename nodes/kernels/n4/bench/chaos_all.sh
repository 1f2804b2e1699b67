#!/usr/bin/env bash
# N4 on all CHAOS T2 volumes: SimpleITK oracle (n4.py, default params) vs voxflow-n4
# (examples/bench_n4, default params) with SimpleITK's shrink sampling phase (--origin/--direction
# -> itk_shrink_offsets) and with the plain centred phase (n4()), compared in SimpleITK's Otsu mask.
#
# usage (from the repository root): bash nodes/kernels/n4/bench/chaos_all.sh [VOLUME.nii.gz ...]
# default volumes: $DATA/chaos_mr_t2_*_image.nii.gz (DATA default /work/shared/data).
# Everything is written under $WORK (default /tmp/n4chaos); nothing derived from the scans goes
# into the repository. Env: PY, ORACLES, CARGO_TARGET_DIR (default /tmp/target-n4).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../../.." && pwd)
PY=${PY:-$ROOT/.venv-oracles/bin/python}
ORACLES=${ORACLES:-/work/shared/oracles}
DATA=${DATA:-/work/shared/data}
WORK=${WORK:-/tmp/n4chaos}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-n4}
mkdir -p "$WORK"
(cd "$ROOT" && cargo build --release --example bench_n4 -p voxflow-n4 -q)
BENCH=$CARGO_TARGET_DIR/release/examples/bench_n4
VOLS=("$@"); [[ ${#VOLS[@]} -eq 0 ]] && VOLS=("$DATA"/chaos_mr_t2_*_image.nii.gz)
echo "machine: $(nproc) cores, load at start: $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
printf "%-16s %8s %-10s %-10s %14s %14s %12s %14s %8s %8s\n" volume mask_vox sitk_off rs_off \
  1-corr 1-corr_centred max_lb_diff last_it_s/rs sitk_s rs_n4_s
for IN in "${VOLS[@]}"; do
  N=$(basename "$IN" .nii.gz); W=$WORK/$N; mkdir -p "$W"
  read -r SHAPE SPACING ORIGIN DIRECTION < <("$PY" - "$IN" "$W/in.f32" <<'P'
import sys, SimpleITK as sitk
img = sitk.ReadImage(sys.argv[1]); a = sitk.GetArrayFromImage(img).astype('<f4'); a.tofile(sys.argv[2])
j = lambda v: ",".join(repr(float(x)) for x in v)
print(",".join(map(str, a.shape)), j(img.GetSpacing()[::-1]), j(img.GetOrigin()), j(img.GetDirection()))
P
)
  T0=$(date +%s.%N)
  "$PY" "$ORACLES/n4.py" "$IN" "$W/s.nii.gz" --log-bias "$W/slb.nii.gz" >"$W/s.json"
  T1=$(date +%s.%N)
  "$BENCH" "$W/in.f32" "$SHAPE" --spacing "$SPACING" --origin "$ORIGIN" --direction "$DIRECTION" \
    --out-log-bias "$W/rlb.f32" >"$W/r.json"
  "$BENCH" "$W/in.f32" "$SHAPE" --spacing "$SPACING" --out-log-bias "$W/rlb_c.f32" >"$W/rc.json"
  "$PY" - "$IN" "$W" "$(echo "$T1 - $T0" | bc)" <<'P'
import sys, json, numpy as np, SimpleITK as sitk
img = sitk.Cast(sitk.ReadImage(sys.argv[1]), sitk.sitkFloat32); W = sys.argv[2]
a = sitk.GetArrayFromImage(img).astype(np.float64)
m = sitk.GetArrayFromImage(sitk.OtsuThreshold(img, 0, 1, 200)) > 0
slb = sitk.GetArrayFromImage(sitk.ReadImage(W + "/slb.nii.gz")).astype(np.float64)
small = sitk.Shrink(img, [4] * 3)
so = img.TransformPhysicalPointToIndex(small.GetOrigin())[::-1]
r, rc = json.load(open(W + "/r.json")), json.load(open(W + "/rc.json")); s = json.load(open(W + "/s.json"))
def cmp(f):
    lb = np.fromfile(f, '<f4').reshape(a.shape).astype(np.float64)
    return 1 - np.corrcoef((a / np.exp(lb))[m], (a / np.exp(slb))[m])[0, 1], np.abs(lb - slb)[m].max()
c, d = cmp(W + "/rlb.f32"); cc, _ = cmp(W + "/rlb_c.f32")
print("%-16s %8d %-10s %-10s %14.2e %14.2e %12.2e %14s %8.2f %8.2f" % (
    sys.argv[1].split("/")[-1][:14], m.sum(), ",".join(map(str, so)), ",".join(map(str, r["shrink_offsets"])),
    c, cc, d, "%d/%d" % (s["elapsed_iterations"] - 1, r["iterations_run"][-1]), float(sys.argv[3]), r["n4_s"]))
P
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
