#!/usr/bin/env bash
# The `n4` node against SimpleITK on real MRI: for each volume, `voxflow run` of
# read_volume -> n4 -> write_volume (corrected, bias), default params (shrink 4, 4 x 50
# iterations, Otsu mask), and the oracle ../shared/oracles/n4.py (SimpleITK 2.5.7) with the
# same defaults; compared inside SimpleITK's Otsu mask. Prints one row per volume and exits 1
# when a volume's corr(corrected, SimpleITK corrected) is below 0.999 (the issue's target).
#
# usage (from the repository root):
#   bash scripts/n4_chaos_all.sh [VOLUME.nii.gz ...]
# default volumes: $VOXFLOW_DATA/chaos_mr_t2_*_image.nii.gz (VOXFLOW_DATA default
# ../shared/data). Env: VF (voxflow binary, default $CARGO_TARGET_DIR/release/voxflow),
# PY (default .venv-oracles/bin/python), WORK (default /tmp/n4-chaos-all). All outputs stay
# under $WORK: nothing derived from the scans goes into the repository.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VF=${VF:-${CARGO_TARGET_DIR:-$ROOT/target}/release/voxflow}
PY=${PY:-$ROOT/.venv-oracles/bin/python}
ORACLE=${ORACLE:-$ROOT/../shared/oracles/n4.py}
DATA=${VOXFLOW_DATA:-$ROOT/../shared/data}
WORK=${WORK:-/tmp/n4-chaos-all}
mkdir -p "$WORK"
VOLS=("$@"); [[ ${#VOLS[@]} -eq 0 ]] && VOLS=("$DATA"/chaos_mr_t2_*_image.nii.gz)
echo "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ), voxflow $VF"
printf "%-16s %8s %-9s %10s %12s %8s %8s %s\n" volume mask_vox shrink0 1-corr max_lb_diff sitk_s vf_s ok
FAIL=0
for IN in "${VOLS[@]}"; do
  N=$(basename "$IN" .nii.gz); W=$WORK/$N; mkdir -p "$W"
  T0=$(date +%s.%N)
  "$PY" "$ORACLE" "$IN" "$W/sitk.nii.gz" --log-bias "$W/sitk_lb.nii.gz" >"$W/sitk.json"
  T1=$(date +%s.%N)
  "$VF" -q run "$ROOT/scripts/n4_graph.yaml" --set input="$IN" --set out="$W/vf.nii.gz" --set bias="$W/vf_bias.nii.gz"
  T2=$(date +%s.%N)
  "$PY" - "$IN" "$W" "$(echo "$T1 - $T0" | bc)" "$(echo "$T2 - $T1" | bc)" <<'P' || FAIL=1
import sys, numpy as np, SimpleITK as sitk
inp, w, ts, tv = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
rd = lambda f: sitk.GetArrayFromImage(sitk.ReadImage(f)).astype(np.float64)
img = sitk.Cast(sitk.ReadImage(inp), sitk.sitkFloat32)
m = sitk.GetArrayFromImage(sitk.OtsuThreshold(img, 0, 1, 200)) > 0
# the first voxel sitk.Shrink samples per axis (k, j, i): depends on the image geometry
start = img.TransformPhysicalPointToIndex(sitk.Shrink(img, [4] * 3).GetOrigin())[::-1]
sc, slb, vc, vb = rd(w + "/sitk.nii.gz"), rd(w + "/sitk_lb.nii.gz"), rd(w + "/vf.nii.gz"), rd(w + "/vf_bias.nii.gz")
c = np.corrcoef(vc[m], sc[m])[0, 1]
ok = c >= 0.999
print("%-16s %8d %-9s %10.1e %12.1e %8.2f %8.2f %s" % (
    inp.split("/")[-1][:14], m.sum(), ",".join(map(str, start)), 1 - c,
    np.abs(np.log(vb) - slb)[m].max(), ts, tv, "yes" if ok else "NO"))
sys.exit(0 if ok else 1)
P
done
echo "load at end $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
exit $FAIL
