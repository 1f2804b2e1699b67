#!/usr/bin/env bash
# The validation behind the CT graph's false-lesion params (issue 17 item 4): synthetic tumours in
# BTCV livers that no lesion model trained on (BTCV 0024, 0029), segmented by the shipped graph
# with each IRCADb fold's models. Part 1: three CRF variants, scored per `min_lesion_mm3`
# candidate by training/lesion_detection.py (the CRF choice). Part 2: without CRF, the cascade's
# probabilities of those volumes and of BTCV 0024 and 0029 without tumours (healthy livers),
# scored per `lesion_threshold` x `min_lesion_mm3` by training/lesion_sweep.py, which prints the
# chosen pair. No IRCADb patient takes part.
#
# Part 2 also writes the liver network's probabilities, so lesion_sweep.py scores the graph's
# min_lesion_liver_prob at its lesion_threshold / min_lesion_mm3. The fold liver models were
# trained on BTCV 0024 and 0029; LIVER=out/ct_liver_not_val.onnx (training/configs/cv/
# ct_liver_not_val.yaml, which never saw them) makes them over-segment as on unseen volumes.
#
# GUARD=OUT2, a finished run of this script with other liver models (its volumes are the same:
# synth_volumes.py draws from fixed seeds), adds lesion_sweep.py's thickness tables, whose rules
# needs both runs: with LIVER=out/ct_liver_not_val.onnx here and the fold liver models in OUT2.
#
# LIVER_THRESHOLD=TAU runs both parts with the graph's liver_threshold at TAU, PART2_ONLY=1 skips
# part 1. lesion_sweep.py's mask table (liver_threshold x min_lesion_ball_share) takes part-2 runs
# at several TAU, each with the validation liver model (V) and the fold liver models (F):
#   for tau in 0.5 0.67 0.8; do
#     PART2_ONLY=1 LIVER_THRESHOLD=$tau LIVER=out/ct_liver_not_val.onnx bash scripts/lesion_validation.sh out/v$tau
#     PART2_ONLY=1 LIVER_THRESHOLD=$tau bash scripts/lesion_validation.sh out/f$tau
#   done
#   .venv-train/bin/python training/lesion_sweep.py mask out/v0.5/vol \
#     --run 0.5 out/v0.5/probs out/f0.5/probs --run 0.67 out/v0.67/probs out/f0.67/probs --run 0.8 out/v0.8/probs out/f0.8/probs
#
# usage: bash scripts/lesion_validation.sh [OUT]     (default out/lesion_val; needs VOXFLOW_DATA,
#        .venv-train, target/release/voxflow; LESION_01 / LESION_17 override the fold lesion models,
#        LIVER both folds' liver models, GUARD the thickness tables' second run, LIVER_THRESHOLD
#        the liver mask's threshold, PART2_ONLY=1 no part 1)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-out/lesion_val}"
PY=.venv-train/bin/python
BIN=target/release/voxflow
: "${VOXFLOW_DATA:?set VOXFLOW_DATA to the scan folder}"
LESION_01="${LESION_01:-models/cv/ct_lesion_not_ircadb01.onnx}"
LESION_17="${LESION_17:-models/cv/ct_lesion_not_ircadb17.onnx}"
liver_model() { echo "${LIVER:-models/cv/ct_liver_not_ircadb$1.onnx}"; }
MASK=()
if [ -n "${LIVER_THRESHOLD:-}" ]; then MASK=(--set "liver_threshold=$LIVER_THRESHOLD"); fi
DROP_ML="0 0.1 0.25 0.5 1 2 4"

mkdir -p "$OUT"
[ -f "$OUT/vol/manifest.csv" ] || "$PY" training/synth_volumes.py btcv0024 btcv0029 --seeds 1 2 3 4 5 6 7 8 --out "$OUT/vol"

# Graph variants: the shipped CRF params, the dense_crf defaults (the authors' params in mm/HU),
# and no CRF (argmax of the cascade's probabilities). Every path they use is set with --set
# (relative to this folder), so the variants can live in $OUT; their include of the report part
# names it by its full path.
PART="s#file: parts/#file: $PWD/graphs/parts/#"
if [ -z "${PART2_ONLY:-}" ]; then
  sed -e 's/^  crf: .*/  crf:    { kind: dense_crf, image: window, prob: merge }/' -e "$PART" graphs/ct_liver_lesion.yaml > "$OUT"/graph_crf_default.yaml
  sed -e 's/^  crf: .*/  crf:    { kind: argmax, in: merge }/' -e "$PART" graphs/ct_liver_lesion.yaml > "$OUT"/graph_argmax.yaml
  grep -q 'kind: dense_crf, image: window, prob: merge }' "$OUT"/graph_crf_default.yaml \
    && grep -q 'kind: argmax, in: merge' "$OUT"/graph_argmax.yaml \
    || { echo "lesion_validation: the crf line of graphs/ct_liver_lesion.yaml changed; update the variants" >&2; exit 1; }
  declare -A GRAPH=([crf]=graphs/ct_liver_lesion.yaml [crf_default]="$OUT"/graph_crf_default.yaml [argmax]="$OUT"/graph_argmax.yaml)
  # The shipped graph runs the CRF only with crf_iterations > 0.
  declare -A ITER=([crf]=10 [crf_default]=0 [argmax]=0)

  for fold in 01 17; do
    lesion_var="LESION_$fold"
    for v in crf crf_default argmax; do
      dir="$OUT/pred_${fold}_$v"
      mkdir -p "$dir"
      for ct in "$OUT"/vol/*_ct.nii.gz; do
        id=$(basename "$ct" _ct.nii.gz)
        [ -f "$dir/$id.nii.gz" ] || "$BIN" run -q "${GRAPH[$v]}" --set input="$ct" \
          --set liver_model="$(liver_model $fold)" --set lesion_model="${!lesion_var}" \
          --set output="$dir/$id.nii.gz" --set report=false --set min_lesion_mm3=0 --set lesion_threshold=0.5 \
          --set crf_iterations="${ITER[$v]}" "${MASK[@]}"
      done
      sed "s#,pred/#,../pred_${fold}_$v/#" "$OUT/vol/manifest.csv" > "$OUT/vol/m_${fold}_$v.csv"
    done
  done
  for v in crf crf_default argmax; do
    echo "== $v (both folds' models pooled; rows: drop_ml = min_lesion_mm3 / 1000)"
    # shellcheck disable=SC2086
    "$PY" training/lesion_detection.py "$OUT/vol/m_01_$v.csv" "$OUT/vol/m_17_$v.csv" --drop-ml $DROP_ML | grep '^ALL'
  done
fi

# Part 2: the cascade's probabilities (the graph's `merge`) of every volume, written and made compact.
sed -e 's/^  crf: .*/  crf:    { kind: argmax, in: merge }\n  probs:  { kind: write_volume, in: merge, path: $probs }\n  lprobs: { kind: write_volume, in: liver, path: $lprobs }/' \
  -e 's/^params:/params:\n  probs: { default: "probs.nii", about: "the cascade'"'"'s probabilities" }\n  lprobs: { default: "lprobs.nii", about: "the liver FCN'"'"'s probabilities" }/' \
  -e "$PART" graphs/ct_liver_lesion.yaml > "$OUT"/graph_probs.yaml
grep -q 'kind: write_volume, in: merge' "$OUT"/graph_probs.yaml && grep -q 'kind: write_volume, in: liver' "$OUT"/graph_probs.yaml \
  || { echo "lesion_validation: the crf line of graphs/ct_liver_lesion.yaml changed; update the variants" >&2; exit 1; }
mkdir -p "$OUT/probs"
for fold in 01 17; do
  lesion_var="LESION_$fold"
  for ct in "$OUT"/vol/*_ct.nii.gz "$VOXFLOW_DATA"/btcv0024_ct.nii.gz "$VOXFLOW_DATA"/btcv0029_ct.nii.gz; do
    id=$(basename "$ct" _ct.nii.gz)
    [ -f "$OUT/probs/${fold}_$id.npz" ] && continue
    "$BIN" run -q "$OUT"/graph_probs.yaml --set input="$ct" --set liver_model="$(liver_model $fold)" \
      --set lesion_model="${!lesion_var}" --set output="$OUT/probs/label.nii.gz" --set probs="$OUT/probs/p.nii" --set lprobs="$OUT/probs/lp.nii" \
      --set report=false --set min_lesion_mm3=0 --set lesion_threshold=0.5 "${MASK[@]}"
    "$PY" training/lesion_sweep.py extract "$OUT/probs/p.nii" "$OUT/probs/${fold}_$id.npz" --liver "$OUT/probs/lp.nii"
  done
done
rm -f "$OUT/probs/p.nii" "$OUT/probs/lp.nii" "$OUT/probs/label.nii.gz"
echo "== lesion_threshold x min_lesion_mm3 (no CRF; both folds' models pooled)"
# min_lesion_liver_prob is scored at the graph's lesion_threshold and min_lesion_mm3.
default_of() { sed -n "s/^  $1: *{ *default: *\([0-9.]*\).*/\1/p" graphs/ct_liver_lesion.yaml; }
AT="$(default_of lesion_threshold) $(default_of min_lesion_mm3)"
[[ "$AT" =~ ^[0-9.]+\ [0-9]+$ ]] || { echo "lesion_validation: no lesion_threshold / min_lesion_mm3 defaults in graphs/ct_liver_lesion.yaml" >&2; exit 1; }
# shellcheck disable=SC2086
"$PY" training/lesion_sweep.py sweep "$OUT/probs" "$OUT/vol" --healthy-max-ml 5 --at $AT ${GUARD:+--guard "$GUARD/probs"}
