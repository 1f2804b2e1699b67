#!/usr/bin/env bash
# Trains every model of training/configs in one time-boxed GPU run: all configs at once on one
# GPU (each its own process), each for MINUTES minutes with a cosine learning-rate decay, then
# exports the last checkpoints to ONNX. The shipped ct_liver is then fine-tuned on the CPU from the
# 2D ct_liver_2d model (configs/ct_liver.yaml; its `init:` names the committed file). Needs the compact training set of training/prepare.py in
# .cache/train/{slices128,roi256_window,mr128_n4,mr128_raw} (about 30 MB) and the tumour hosts of
# `prepare.py --hosts` in .cache/train/hosts (cv/ct_lesion_synthetic_only).
#
#   MINUTES=7 bash training/gpu_train_all.sh            # models -> out/gpu/models/, logs -> models/logs/
#
# On the lent device machine the results go to $OUT as a few tar files (its file-count limit);
# unpack them in the repository root: `for t in $OUT/*.tar; do tar xf $t; done`.
set -u
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-7}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
DEST=${OUT:-out/gpu}
CONFIGS="ct_liver_2d cv/ct_liver_not_ircadb01 cv/ct_liver_not_ircadb17 ct_lesion cv/ct_lesion_not_ircadb01
cv/ct_lesion_not_ircadb17 mr_liver cv/mr_liver_not_fold1 cv/mr_liver_not_fold2 cv/mr_liver_raw_not_fold1
cv/mr_liver_raw_not_fold2 cv/ct_lesion_synthetic_only"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
mkdir -p "$DEST" out/gpu/train_logs out/gpu/models/cv models/logs/cv
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, onnx, onnxruntime as ort; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), '| onnx', onnx.__version__, '| onnxruntime', ort.__version__, ort.get_available_providers())"
t0=$(date +%s)
pids=""
for c in $CONFIGS; do
  log=out/gpu/train_logs/$(echo "$c" | tr / _).log
  $PY training/train.py train "training/configs/$c.yaml" --device "$DEVICE" --minutes "$MINUTES" --cosine > "$log" 2>&1 &
  pids="$pids $!"
done
fail=0
for p in $pids; do wait "$p" || fail=1; done
echo "training done after $(( $(date +%s) - t0 )) s (any failed: $fail)"
for c in $CONFIGS; do
  $PY training/train.py export "training/configs/$c.yaml" --checkpoint last --out "out/gpu/models/$c.onnx" \
    > "out/gpu/train_logs/$(echo "$c" | tr / _).export.log" 2>&1 &
done
wait
for c in $CONFIGS; do
  f=out/gpu/train_logs/$(echo "$c" | tr / _).log
  echo "== $c: $(grep -c '^epoch' "$f") epochs; $(grep 'slices/s' "$f" | tail -1)"; tail -2 "$f"
  tail -1 "out/gpu/train_logs/$(echo "$c" | tr / _).export.log"
done
if [ -n "${OUT:-}" ]; then
  # At most 8 files of <= 16 MiB come back: 4 models per tar.
  (cd out/gpu/models && ls ct_*.onnx mr_*.onnx cv/*.onnx 2>/dev/null) > /tmp/models.txt
  split -l 4 -d /tmp/models.txt /tmp/models.part.
  for part in /tmp/models.part.*; do
    tar cf "$OUT/models_$(basename "$part" | sed 's/.*\.//').tar" -C out/gpu/models -T "$part"
  done
  tar cf "$OUT/logs.tar" models/logs out/gpu/train_logs
  ls -la "$OUT"
fi
