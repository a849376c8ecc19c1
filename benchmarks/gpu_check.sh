#!/usr/bin/env bash
# The GPU path, run for real (issue 13): one script for one device run of about 8 minutes.
#
#   bash benchmarks/gpu_check.sh              # on the GPU machine (results and logs in $OUT or build/gpu_check)
#   GPU_CHECK_SIZE=tiny bash benchmarks/gpu_check.sh   # proves the script on a CPU in a few minutes
#
# Steps (each logged to $OUT/gpu_check.log; figures also in $OUT/*.json):
#   1. GPU, driver, torch and CUDA versions;
#   2. data: the embedded face model, a synthetic 300W-LP set and its UV training file (>= 5,000
#      samples) built by the project's own stages on the machine's cores;
#   3. benchmarks/bench_prnet.py: training images/s (fp32, bf16, bf16 + compile; channels-last) at
#      batch 16 and at a saturating batch; inference images/s (bf16, BN folded) at batch 1 and large;
#   4. benchmarks/bench_feed.py: images/s the DataLoader delivers with 8 workers, and the GPU's busy
#      fraction during training fed by it;
#   5. the paper's configuration (width 16, TF batch-norm momentum, bf16, Adam 1e-4) trained for
#      TRAIN_SECONDS, killed with SIGKILL, resumed for RESUME_SECONDS: loss falls, no NaN/inf,
#      the second run continues from the checkpoint;
#   6. torchrun --standalone --nproc_per_node=1 -m pipeline.train for one short epoch (the DDP path).
# Python packages the device image lacks (hdf5plugin, dask, distributed and theirs) travel as wheels
# in .whl/ (benchmarks/gpu_wheels.sh downloads them here; carry `.whl`).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZE=${GPU_CHECK_SIZE:-full}
OUT=${OUT:-$ROOT/build/gpu_check}
WORK=${GPU_CHECK_WORK:-/tmp/gpu_check}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$WORK"
LOG=$OUT/gpu_check.log
exec > >(tee -a "$LOG") 2>&1
export PYTHONUNBUFFERED=1 DVC_NO_ANALYTICS=1

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_check: installing the carried wheels failed"; exit 1; }
  export PYTHONPATH=/tmp/site:$ROOT
else
  export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
fi

if [ "$SIZE" = tiny ]; then
  DEVICE=cpu; N_TRAIN=64; N_VERT=2000; BIG_BATCH=16; TRAIN_STEPS=2; LOADER_S=3; FEED_S=5
  TRAIN_SECONDS=40; RESUME_SECONDS=25; WIDTH=4; WORKERS=2; INFER_BATCH=4; RUNS=3
  VARIANTS=("--precision fp32"); BATCHES=16; EXTRA="--rounds 1"   # the CPU path times its own modes
  DDP_VAL=0.5
else
  DEVICE=cuda; N_TRAIN=5000; N_VERT=53215; BIG_BATCH=${BIG_BATCH:-256}; TRAIN_STEPS=30; LOADER_S=20; FEED_S=40
  TRAIN_SECONDS=${TRAIN_SECONDS:-110}; RESUME_SECONDS=${RESUME_SECONDS:-50}; WIDTH=16; WORKERS=8; INFER_BATCH=1024; RUNS=30
  VARIANTS=("--precision fp32" "--precision bf16" "--precision bf16 --compile" "--precision bf16 --no-channels-last")
  BATCHES="16 $BIG_BATCH"; EXTRA=""; DDP_VAL=0.9
fi
CORES=$(nproc)
step() { echo; echo "=== [$(date +%T)] $*"; }
t_start=$(date +%s)

step "1. versions"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "nvidia-smi: not available"
"$PY" - <<'PY'
import platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}, GPU {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
PY

step "2. data: face model ($N_VERT vertices), synthetic 300W-LP ($N_TRAIN samples), UV training file"
P=$WORK/params.yaml
"$PY" benchmarks/write_params.py "$P" \
  face_model.n_vertices=$N_VERT face_model.out_dir=$WORK/face_model \
  synth_300wlp.count=$N_TRAIN synth_300wlp.out_dir=$WORK/300W_LP synth_300wlp.workers=$CORES \
  uvgen.model_dir=$WORK/face_model uvgen.train_root=$WORK/300W_LP uvgen.train_out=$WORK/uv/train.h5 \
  uvgen.workers=$CORES || exit 1
t0=$(date +%s)
"$PY" -m pipeline.make_face_model --params "$P" && "$PY" -m pipeline.make_synth 300wlp --params "$P" \
  && "$PY" -m pipeline.make_uv train --params "$P" || { echo "gpu_check: data build failed"; exit 1; }
echo "data built in $(( $(date +%s) - t0 )) s"
H5=$WORK/uv/train.h5

step "3. bench_prnet: training and inference images/s"
for variant in "${VARIANTS[@]}"; do
  for batch in $BATCHES; do
    echo "--- $variant, train batch $batch"
    timeout 300 "$PY" benchmarks/bench_prnet.py --h5 "$H5" --device $DEVICE --width $WIDTH $variant \
      --train-batch $batch --train-steps $TRAIN_STEPS --infer-batch $INFER_BATCH --runs $RUNS \
      --num-workers $WORKERS $EXTRA || echo "gpu_check: bench_prnet $variant batch $batch failed (exit $?)"
  done
done

step "4. bench_feed: loader alone, and GPU busy fraction during training fed by it"
timeout 300 "$PY" benchmarks/bench_feed.py --h5 "$H5" --device $DEVICE --width $WIDTH --batch $BIG_BATCH \
  --num-workers $WORKERS --loader-seconds $LOADER_S --train-seconds $FEED_S --json "$OUT/feed.json" \
  || echo "gpu_check: bench_feed failed (exit $?)"

step "5. paper configuration: train ${TRAIN_SECONDS} s, SIGKILL, resume ${RESUME_SECONDS} s"
PT=$WORK/params_train.yaml
"$PY" benchmarks/write_params.py "$PT" --base "$P" \
  train_common.train_file=$H5 train.out_dir=$WORK/train train.width=$WIDTH train_common.epochs=40 train_common.bn_momentum=0.001 \
  train.lr=1.0e-4 train_common.lr_schedule=step train.net_size=null train.template=false \
  train_common.device=$DEVICE train_common.num_workers=$WORKERS train_common.checkpoint_every=100 train_common.progress=false \
  train_common.rotation_deg=45 'train_common.scale_range=[0.9,1.2]' train_common.shift_frac=0.1 \
  'train_common.color_range=[0.6,1.4]' train_common.occlusion_prob=0.5 || exit 1
"$PY" - "$PT" <<'PY' || exit 1
import sys, yaml
p = yaml.safe_load(open(sys.argv[1]))
t = {**p["train_common"], **p["train"]}
print("recipe:", {k: t[k] for k in ("width", "batch_size", "lr", "lr_schedule", "lr_step_epochs", "lr_gamma", "bn_momentum", "net_size", "template", "amp", "epochs") if k in t})
PY
timeout -s KILL "$TRAIN_SECONDS" "$PY" -m pipeline.train --params "$PT"; echo "first run ended (exit $?; 137 = killed as planned)"
"$PY" benchmarks/gpu_train_report.py "$WORK/train" --json "$OUT/train_first.json"
timeout -s KILL "$RESUME_SECONDS" "$PY" -m pipeline.train --params "$PT"; echo "resumed run ended (exit $?)"
"$PY" benchmarks/gpu_train_report.py "$WORK/train" --json "$OUT/train_resumed.json" --after "$OUT/train_first.json"
cp "$WORK/train/loss.csv" "$OUT/loss.csv" 2>/dev/null

step "6. DDP path: torchrun --standalone --nproc_per_node=1, one short epoch"
PD=$WORK/params_ddp.yaml
"$PY" benchmarks/write_params.py "$PD" --base "$PT" train.out_dir=$WORK/train_ddp train_common.epochs=1 \
  train_common.val_fraction=$DDP_VAL || exit 1
timeout 240 "$PY" -m torch.distributed.run --standalone --nproc_per_node=1 -m pipeline.train --params "$PD" \
  && echo "DDP run: ok" || echo "gpu_check: DDP run failed (exit $?)"

step "done in $(( $(date +%s) - t_start )) s; log: $LOG"
