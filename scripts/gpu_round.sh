#!/usr/bin/env bash
# One training round of the bundled model on a lent GPU machine (docs/training.md, "Training rounds").
# The run starts in its own process session and outlives the 10-minute calls that watch it, so a
# round of 20+ minutes is one uninterrupted run. From the repository root:
#   scripts/gpu_round.sh build               # the CUDA extension in place, then a 3-step smoke run
#   scripts/gpu_round.sh launch MINUTES      # the round (docs/runs/round3.json) on every GPU (DDP), detached
#   scripts/gpu_round.sh watch SECONDS       # follow its log for a while (returns early when it ends)
#   scripts/gpu_round.sh jit                 # the CUDA half of the first-use build's tests (while the round runs)
#   scripts/gpu_round.sh finish OUT          # wait for the export; bench_refine, CUDA tests; copy to OUT
set -euo pipefail
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
CFG=${A3D_ROUND_CONFIG:-docs/runs/round3.json}
RUN=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['out_dir'])" "$CFG")
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
gpus() { python3 -c 'import torch; print(torch.cuda.device_count())'; }
case "${1:-}" in
  build)
    MAX_JOBS=${MAX_JOBS:-32} TORCH_CUDA_ARCH_LIST=9.0 python3 setup.py -q build_ext --inplace 2>&1 | grep -v "^ptxas info" | tail -5
    python3 -c "import a3d; from a3d import ops; print(ops.info()); print(a3d.backend('cuda'))"
    # a few steps first: a crash shows in seconds, not at the end of the round
    python3 -m a3d.train --config "$CFG" --max-steps 3 --eval-heads 0 --gallery-images 0 \
      --out-dir /tmp/smoke --export-dir "" --log-every 1 > /tmp/smoke.log 2>&1 || { tail -40 /tmp/smoke.log; exit 1; }
    grep stage_s /tmp/smoke/log.jsonl | tail -1 | cut -c1-500
    ;;
  launch)
    mkdir -p "$RUN"
    setsid nohup torchrun --nproc_per_node="$(gpus)" -m a3d.train --config "$CFG" --max-minutes "$2" \
      > "$RUN/stdout.log" 2>&1 < /dev/null &
    echo "launched on $(gpus) GPU(s): $RUN/stdout.log"
    ;;
  watch)
    end=$(( $(date +%s) + $2 ))
    while [ "$(date +%s)" -lt "$end" ]; do
      if ! pgrep -f "a3d.train --config $CFG" > /dev/null; then echo "the run has ended"; break; fi
      sleep 15
    done
    tail -n 2 "$RUN/log.jsonl" 2>/dev/null | cut -c1-700
    tail -n 3 "$RUN/stdout.log"
    ;;
  jit)
    # the first-use build (a3d/_jit.py) of the CUDA kernels, against the in-place one (docs/builds.md)
    python3 -m pytest -q -m cuda -p no:cacheprovider tests/test_jit.py 2>&1 | tail -4
    ;;
  finish)
    out=$2
    while pgrep -f "a3d.train --config $CFG" > /dev/null; do sleep 5; done
    tail -n 5 "$RUN/stdout.log"
    mkdir -p "$out/export"
    cp "$RUN"/export/* "$out/export/"
    cp "$RUN"/log.jsonl "$RUN"/eval.json "$RUN"/stdout.log "$out/" 2>/dev/null || true
    cp "$RUN"/gallery_*.png "$out/" 2>/dev/null || true
    python3 bench/bench_refine.py --model "$RUN/export" --device cuda --json "$out/bench_refine_h200.json" 2>&1 | tail -12
    python3 -m pytest -q -m cuda -p no:cacheprovider --ignore tests/test_jit.py tests 2>&1 | tail -4
    ls -la "$out"
    ;;
  *)
    echo "usage: $0 build | launch MINUTES | watch SECONDS | finish OUT" >&2
    exit 2
    ;;
esac
