#!/usr/bin/env bash
# N4 speed, side by side in one run: the oracle ../shared/oracles/n4.py (SimpleITK 2.5.7) and
# `voxflow run` of read_volume -> n4 -> write_volume (corrected, bias), same input, default
# params (shrink 4, 4 x 50 iterations, convergence 0.001, Otsu mask), alternated REPS times.
# Both read the .nii.gz and write the corrected image and the field as .nii.gz. Wall time and
# peak RSS from /usr/bin/time -v; then the agreement of the last outputs inside SimpleITK's Otsu
# mask (and with the true bias when given).
#
# usage (from the repository root):
#   bash scripts/n4_bench.sh [IN.nii.gz [TRUE_BIAS.nii.gz]]
# default input: the synthetic 256x256x64 MRI of make_synthetic.py (generated under $WORK if
# missing). Env: VF (voxflow binary, default $CARGO_TARGET_DIR/release/voxflow), PY (default
# .venv-oracles/bin/python), REPS (default 3), THREADS (0 = all cores, passed to both),
# WORK (default /tmp/n4-bench).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VF=${VF:-${CARGO_TARGET_DIR:-$ROOT/target}/release/voxflow}
PY=${PY:-$ROOT/.venv-oracles/bin/python}
ORACLES=${ORACLES:-$ROOT/../shared/oracles}
WORK=${WORK:-/tmp/n4-bench}
REPS=${REPS:-3}
THREADS=${THREADS:-0}
mkdir -p "$WORK"
IN=${1:-}
TRUE=${2:-}
if [[ -z "$IN" ]]; then
  if [[ ! -f "$WORK/synth/mri_bias.nii.gz" ]]; then
    # a full run: --mri-only draws another random stream
    "$PY" "$ORACLES/make_synthetic.py" "$WORK/synth" >/dev/null
    rm -f "$WORK"/synth/{prob,c200_prob,ct,c200_ct}.nii.gz
  fi
  IN=$WORK/synth/mri.nii.gz
  TRUE=$WORK/synth/mri_bias.nii.gz
fi
TV=(); [[ "$THREADS" != 0 ]] && TV=(--threads "$THREADS")
wall_rss() { # "wall_s rss_MiB" from a /usr/bin/time -v log
  awk '/Elapsed \(wall/ {n = split($NF, t, ":"); s = t[n] + (n > 1 ? 60 * t[n-1] : 0) + (n > 2 ? 3600 * t[n-2] : 0)}
       /Maximum resident/ {r = $NF / 1024} END {printf "%.2f %.0f\n", s, r}' "$1"
}
echo "input $IN; $(nproc) cores, threads $THREADS (0 = all); $(date -u +%FT%TZ)"
printf "%-4s %-7s %14s %14s %14s %12s %s\n" rep load1 sitk_wall_s sitk_rss_MiB sitk_fit_s vf_wall_s "vf_rss_MiB vf_n4_node_s"
for r in $(seq 1 "$REPS"); do
  L=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -v "$PY" "$ORACLES/n4.py" "$IN" "$WORK/sitk.nii.gz" --log-bias "$WORK/sitk_lb.nii.gz" \
    --threads "$THREADS" >"$WORK/sitk.json" 2>"$WORK/sitk.time"
  /usr/bin/time -v "$VF" -q run "$ROOT/scripts/n4_graph.yaml" --set input="$IN" --set out="$WORK/vf.nii.gz" \
    --set bias="$WORK/vf_bias.nii.gz" --report "$WORK/report.json" "${TV[@]}" 2>"$WORK/vf.time"
  read -r SW SR < <(wall_rss "$WORK/sitk.time")
  read -r VW VR < <(wall_rss "$WORK/vf.time")
  FIT=$("$PY" -c "import json; print('%.2f' % json.load(open('$WORK/sitk.json'))['fit_s'])" 2>/dev/null || echo -)
  NODE=$("$PY" -c "import json; r = json.load(open('$WORK/report.json')); print('%.2f' % (next(n for n in r['nodes'] if n['id'] == 'n4')['wall_ms'] / 1000))")
  printf "%-4s %-7s %14s %14s %14s %12s %s %s\n" "$r" "$L" "$SW" "$SR" "$FIT" "$VW" "$VR" "$NODE"
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" - "$IN" "$WORK" "$TRUE" <<'P'
import sys, json, numpy as np, SimpleITK as sitk
inp, w, true = sys.argv[1], sys.argv[2], sys.argv[3]
rd = lambda f: sitk.GetArrayFromImage(sitk.ReadImage(f)).astype(np.float64)
img = sitk.Cast(sitk.ReadImage(inp), sitk.sitkFloat32)
m = sitk.GetArrayFromImage(sitk.OtsuThreshold(img, 0, 1, 200)) > 0
sc, slb, vc, vb = rd(w + "/sitk.nii.gz"), rd(w + "/sitk_lb.nii.gz"), rd(w + "/vf.nii.gz"), rd(w + "/vf_bias.nii.gz")
r = {"mask_voxels": int(m.sum()), "corr_corrected_vs_sitk": float(np.corrcoef(vc[m], sc[m])[0, 1]),
     "max_abs_log_bias_diff": float(np.abs(np.log(vb) - slb)[m].max())}
if true:
    tb = rd(true)
    r["corr_bias_vs_true_voxflow"] = float(np.corrcoef(vb[m], tb[m])[0, 1])
    r["corr_bias_vs_true_sitk"] = float(np.corrcoef(np.exp(slb[m]), tb[m])[0, 1])
print(json.dumps(r))
P
