#!/usr/bin/env bash
# WinoDigits-2 training recipe: 3 seeds x 3 recipes (CLIP; SD with CLIP's frozen text tower; SD with a jointly
# trained text encoder), sequential, one thread, resumable (rerun this script after an interruption).
# Sized for a 2-core CPU shared with ~6 other jobs (load average 3-12 while this ran): 8-19 min per seed here.
# Equal image-side training samples per model: 24,064 = SD 2 epochs x 376 steps x batch 32
#                                                      = CLIP 2 epochs x 188 steps x batch 64.
# A first round at 8,000 samples (seed 0 only: CLIP and SD-frozen) left both at chance on the validation set
# (BENCHMARKS.md; its runs were moved to runs/v2-8k); it used SD "--steps-per-epoch 125 --warmup 25
# --eval-every 2" and CLIP "--steps-per-epoch 32 --batch-size 125 --warmup 6", everything else as below.
# One VAE (seed 0, 500 steps x batch 32 on the v2 stream) is shared by every SD run (--vae-from); its
# reconstruction error is in RUNS/vae/vae_history.json. The validation score (learning-curve point) is on the
# winodigits2 validation seed (1), 10 examples per tag, after every epoch.
# Usage: bash benchmarks/winodigits2_train.sh [RUNS_DIR] (default runs/v2)
set -euo pipefail
R=${1:-runs/v2}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
COMMON="--grammar 2 --threads 1 --no-progress --resume --eval-per-tag 10"
SD="--epochs 2 --steps-per-epoch 376 --batch-size 32 --warmup 75 --pool 8000 --eval-n-t 10 --eval-every 1"
CLIP="--epochs 2 --steps-per-epoch 188 --batch-size 64 --warmup 38 --pool 8000"
mkdir -p "$R"
# the shared VAE: a 1-step U-Net stage after a 500-step VAE stage (only vae_done.safetensors is reused)
[ -f "$R/vae/vae_done.safetensors" ] || \
  $PY -m winoeval train winodigits-sd --out "$R/vae" $COMMON --epochs 1 --steps-per-epoch 1 --eval-every 0 \
    --vae-steps 500 --vae-batch 32 --pool 20000 --seed 0
for s in 0 1 2; do
  $PY -m winoeval train winodigits-clip --out "$R/clip-s$s" $COMMON $CLIP --seed $s
  $PY -m winoeval train winodigits-sd --out "$R/sd-frozen-s$s" $COMMON $SD --seed $s --vae-from "$R/vae" \
      --frozen-text "$R/clip-s$s/model"
  $PY -m winoeval train winodigits-sd --out "$R/sd-joint-s$s" $COMMON $SD --seed $s --vae-from "$R/vae"
done
echo ALL DONE
# Extra, not part of the equal-samples comparison (run beside the loop above, one seed): CLIP with 4x the images
# (96,256 = 4 epochs x 188 steps x batch 128), for the learning curve on the validation seed:
#   $PY -m winoeval train winodigits-clip --out runs/v2-long/clip-s0 $COMMON --epochs 4 --steps-per-epoch 188 \
#       --batch-size 128 --warmup 75 --pool 8000 --seed 0
