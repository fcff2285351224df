#!/usr/bin/env bash
# One training round of the bundled model on a lent GPU machine (docs/training.md, "Training rounds"),
# in the stages that fit its 10-minute calls. Run from the repository root:
#   scripts/gpu_round.sh build                  # CUDA extension in place (and carried wheels, if any)
#   scripts/gpu_round.sh ablation MINUTES       # both arms side by side, one GPU each, from the bundled weights
#   scripts/gpu_round.sh continue MINUTES STEPS # the input-decoder arm resumed on every GPU (DDP)
#   scripts/gpu_round.sh collect DIR            # exported weights, evals, logs and galleries into DIR
set -euo pipefail
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
NEW=docs/runs/round2_input_decoder.json
BASE=docs/runs/round2_baseline.json
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
case "${1:-}" in
  build)
    MAX_JOBS=${MAX_JOBS:-32} TORCH_CUDA_ARCH_LIST=9.0 python3 setup.py -q build_ext --inplace 2>&1 | grep -v "^ptxas info" | tail -5
    python3 -c "import a3d; from a3d import ops; print(ops.info()); print(a3d.backend('cuda'))"
    ;;
  ablation)
    mins=$2
    # a few steps of each arm first: a crash shows in seconds, not at the end of the call
    for cfg in $NEW $BASE; do
      python3 -m a3d.train --config $cfg --max-steps 3 --eval-heads 0 --gallery-images 0 \
        --out-dir /tmp/smoke_$(basename $cfg .json) --export-dir "" --log-every 1 > /tmp/smoke.log 2>&1 \
        || { tail -40 /tmp/smoke.log; exit 1; }
      grep stage_s /tmp/smoke_$(basename $cfg .json)/log.jsonl | tail -1 | cut -c1-400
    done
    # one GPU each where there are two; on one GPU the arms share it (the same budget for both)
    second=$(( $(python3 -c 'import torch; print(torch.cuda.device_count())') > 1 ? 1 : 0 ))
    CUDA_VISIBLE_DEVICES=0 python3 -m a3d.train --config $NEW --max-minutes "$mins" > runs_new.log 2>&1 &
    a=$!
    CUDA_VISIBLE_DEVICES=$second python3 -m a3d.train --config $BASE --max-minutes "$mins" > runs_base.log 2>&1 &
    b=$!
    wait $a; ra=$?
    wait $b; rb=$?
    tail -3 runs_new.log runs_base.log
    echo "input decoder rc=$ra, baseline rc=$rb"
    ;;
  continue)
    torchrun --nproc_per_node="$(python3 -c 'import torch; print(torch.cuda.device_count())')" -m a3d.train \
      --config $NEW --max-minutes "$2" --max-steps "$3" > runs_new_ddp.log 2>&1 || { tail -30 runs_new_ddp.log; exit 1; }
    tail -3 runs_new_ddp.log
    ;;
  collect)
    out=$2
    mkdir -p "$out"
    for run in round2 round2_baseline; do
      [ -f runs/$run/eval.json ] && cp runs/$run/eval.json "$out/${run}_eval.json"
      [ -f runs/$run/log.jsonl ] && cp runs/$run/log.jsonl "$out/${run}_log.jsonl"
    done
    [ -d runs/round2/export ] && mkdir -p "$out/round2_export" && cp runs/round2/export/* "$out/round2_export/"
    [ -f runs/round2/gallery_0.png ] && cp runs/round2/gallery_0.png "$out/round2_gallery_0.png"
    ls -la "$out"
    ;;
  *)
    echo "usage: $0 build | ablation MINUTES | continue MINUTES STEPS | collect DIR" >&2
    exit 2
    ;;
esac
