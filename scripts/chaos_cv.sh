#!/usr/bin/env bash
# CHAOS T2 MR liver, 2-fold cross-validation (issue 4): every volume is segmented through
# graphs/mri_liver.yaml by the fold model that never saw it, with and without N4 and with and
# without the dense CRF, then scored by `voxflow eval`. Prints a Markdown table (liver Dice per
# volume, mean +- population std) and writes everything under $OUT.
#
# Folds: 1 = CHAOS 01, 03, 08, 13, 19, 21, 31; 2 = 02, 05, 10, 15, 20, 22, 32. Models (trained by
# training/train.py with training/configs/cv/mr_liver{,_raw}_not_fold{1,2}.yaml, exported there):
#   $MODELS/mr_liver_not_foldF.onnx (N4 on), $MODELS/mr_liver_raw_not_foldF.onnx (N4 off).
#
# usage (repo root, after `cargo build --release`):
#   VOXFLOW_DATA=/path/to/scans scripts/chaos_cv.sh
# env: MODELS (default out/models/cv), VARIANTS ("n4 raw": with and without N4; "n4" alone),
#      VOXFLOW (default target/release/voxflow), OUT (default out/chaos_cv; derived from the
#      scans: never commit it).
set -euo pipefail
DATA=$(realpath "${VOXFLOW_DATA:?set VOXFLOW_DATA to the folder with chaos_mr_t2_01_image.nii.gz etc.}")
cd "$(dirname "$0")/.."
VOXFLOW=${VOXFLOW:-target/release/voxflow}
MODELS=$(realpath "${MODELS:-out/models/cv}")
OUT=${OUT:-out/chaos_cv}
VARIANTS=${VARIANTS:-n4 raw}
FOLD1=(01 03 08 13 19 21 31)
FOLD2=(02 05 10 15 20 22 32)

[ -x "$VOXFLOW" ] || { echo "no voxflow binary at $VOXFLOW (cargo build --release)" >&2; exit 1; }
for v in "${FOLD1[@]}" "${FOLD2[@]}"; do
  for f in image label; do
    [ -f "$DATA/chaos_mr_t2_${v}_$f.nii.gz" ] || { echo "missing $DATA/chaos_mr_t2_${v}_$f.nii.gz" >&2; exit 1; }
  done
done
suffix() { [ "$1" = n4 ] && echo "" || echo "_$1"; }
for v in $VARIANTS; do
  [ "$v" = n4 ] || [ "$v" = raw ] || { echo "VARIANTS: n4 or raw, not $v" >&2; exit 1; }
  for fold in 1 2; do
    m="$MODELS/mr_liver$(suffix "$v")_not_fold$fold.onnx"
    [ -f "$m" ] || { echo "missing model $m (see training/configs/cv/)" >&2; exit 1; }
  done
done
mkdir -p "$OUT"

# manifest VARIANT: id,input,truth,liver_model (graph params per row), each volume with the
# model of the fold that does not contain it.
manifest() {
  echo "id,input,truth,liver_model"
  local fold v
  for fold in 1 2; do
    local -n ids="FOLD$fold"
    for v in "${ids[@]}"; do
      echo "$v,$DATA/chaos_mr_t2_${v}_image.nii.gz,$DATA/chaos_mr_t2_${v}_label.nii.gz,$MODELS/mr_liver$1_not_fold$fold.onnx"
    done
  done
}

# row LABEL DIR: one table row from DIR/metrics.csv, volumes in fold order.
row() {
  python3 - "$1" "$2/metrics.csv" "${FOLD1[@]}" "${FOLD2[@]}" <<'EOF'
import csv, statistics, sys
label, path, ids = sys.argv[1], sys.argv[2], sys.argv[3:]
dice = {r["id"]: float(r["dice"]) for r in csv.DictReader(open(path)) if r["class"] == "liver" and r["status"] == "ok"}
missing = [i for i in ids if i not in dice]
if missing:
    sys.exit(f"{path}: no liver Dice for {missing}")
vals = [dice[i] for i in ids]
print(f"| {label} | " + " | ".join(f"{v:.3f}" for v in vals)
      + f" | {statistics.mean(vals):.3f} +- {statistics.pstdev(vals):.3f} |")
EOF
}

header="| volume | $(printf '%s | ' "${FOLD1[@]}" "${FOLD2[@]}")mean +- std |"
sep="|$(printf ' --- |%.0s' $(seq 0 15))"
rows=()
for v in $VARIANTS; do
  name=_$v
  n4=$([ "$v" = n4 ] && echo true || echo false)
  manifest "$(suffix "$v")" > "$OUT/manifest$name.csv"
  for crf in 0 10; do
    dir="$OUT/eval${name}_crf$crf"
    echo "[chaos_cv] N4 $n4, CRF iterations $crf -> $dir" >&2
    "$VOXFLOW" eval graphs/mri_liver.yaml --manifest "$OUT/manifest$name.csv" --out "$dir" --quiet \
      --class 'liver:>=1' --set n4="$n4" --set crf_iterations="$crf" --set report=false
    label="$([ "$n4" = true ] && echo "N4" || echo "no N4"), $([ "$crf" = 0 ] && echo "before CRF" || echo "with CRF")"
    rows+=("$(row "$label" "$dir")")
  done
done
echo "$header"
echo "$sep"
printf '%s\n' "${rows[@]}"
