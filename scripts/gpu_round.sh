#!/usr/bin/env bash
# A training round on a GPU machine reached through calls of at most 10 minutes (docs/training.md).
# A round is one config trained on every GPU (DDP), or an ablation: several configs, one GPU each, side
# by side (A3D_ROUND_CONFIGS="a.json b.json"; with fewer GPUs than configs, config i goes to GPU i mod the
# count and they share it, each at a fraction of the rate). The runs start in their own process sessions and
# outlive the calls that watch them, so a round of 20+ minutes is one uninterrupted run. From the
# repository root:
#   scripts/gpu_round.sh build [smoke]       # the CUDA extension in place (then a timed 40-step smoke run a config)
#   scripts/gpu_round.sh launch MINUTES      # the round, detached; after a smoke run, each config's max_steps is
#                                            # set from its step time so that the cosine ends near the clock
#   scripts/gpu_round.sh watch SECONDS       # follow its logs for a while (returns early when it ends)
#   scripts/gpu_round.sh jit                 # the CUDA half of the first-use build's tests (while the round runs)
#   scripts/gpu_round.sh finish OUT          # wait for the exports, copy them to OUT; the CUDA tests
# Such a machine is handed back after a short idle time between calls, and detached runs go with it. So issue
# each call as soon as the previous one returns, or (safer) train in the foreground of each call with
# --max-minutes (a clock stop checkpoints, evaluates and exports, so the call copies the export to $OUT) and run
# the same command again, which resumes from the checkpoint.
set -euo pipefail
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# default: the recipe (TrainConfig's defaults) continued from the bundled weights, as the bundled model's last run
read -r -a CFGS <<< "${A3D_ROUND_CONFIGS:-scripts/round.json}"
out_dir() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['out_dir'])" "$1"; }
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
gpus() { python3 -c 'import torch; print(torch.cuda.device_count())'; }
running() { pgrep -f "a3d.train --config" > /dev/null; }
# --max-steps N for config I so that its cosine ends ~40 s before MINUTES (setup, evaluations, export), from
# the smoke run's warm step time; nothing (the config's own max_steps) without a smoke run. DDP steps time
# like one GPU's (batch_size is per GPU).
fit_steps() {
  [ -f "/tmp/smoke$1/log.jsonl" ] || return 0
  python3 - "/tmp/smoke$1/log.jsonl" "$2" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"elapsed_s"' in l]
step_s = (rows[-1]["elapsed_s"] - rows[-2]["elapsed_s"]) / (rows[-1]["step"] - rows[-2]["step"])
print(f"--max-steps {int((float(sys.argv[2]) * 60 - 40) / step_s)}")
PY
}
case "${1:-}" in
  build)
    MAX_JOBS=${MAX_JOBS:-32} TORCH_CUDA_ARCH_LIST=9.0 python3 setup.py -q build_ext --inplace 2>&1 | grep -v "^ptxas info" | tail -5
    python3 -c "import a3d; from a3d.core import ops; print(ops.info()); print(a3d.backend('cuda'))"
    [ "${2:-}" = smoke ] || exit 0
    # 40 steps of each config first, side by side: a crash shows in seconds, not at the end of the round,
    # and steps 20-40 time a warm step (launch sizes max_steps with it)
    i=0 n=$(gpus)
    for cfg in "${CFGS[@]}"; do
      CUDA_VISIBLE_DEVICES=$(( i % n )) python3 -m a3d.train --config "$cfg" --max-steps 40 --eval-heads 0 \
        --gallery-images 0 --out-dir "/tmp/smoke$i" --export-dir "" --log-every 20 > "/tmp/smoke$i.log" 2>&1 &
      i=$(( i + 1 ))
    done
    wait || { tail -40 /tmp/smoke*.log; exit 1; }
    for f in /tmp/smoke*/log.jsonl; do grep stage_s "$f" | tail -1 | cut -c1-400; done
    ;;
  launch)
    if [ "${#CFGS[@]}" -eq 1 ]; then
      run=$(out_dir "${CFGS[0]}"); mkdir -p "$run"
      setsid nohup torchrun --nproc_per_node="$(gpus)" -m a3d.train --config "${CFGS[0]}" --max-minutes "$2" \
        $(fit_steps 0 "$2") > "$run/stdout.log" 2>&1 < /dev/null &
      echo "launched ${CFGS[0]} on $(gpus) GPU(s) (DDP) $(fit_steps 0 "$2")"
    else
      i=0 n=$(gpus)
      for cfg in "${CFGS[@]}"; do
        run=$(out_dir "$cfg"); mkdir -p "$run"
        CUDA_VISIBLE_DEVICES=$(( i % n )) setsid nohup python3 -m a3d.train --config "$cfg" --max-minutes "$2" \
          $(fit_steps $i "$2") > "$run/stdout.log" 2>&1 < /dev/null &
        echo "launched $cfg on GPU $(( i % n )) $(fit_steps $i "$2")"
        i=$(( i + 1 ))
      done
    fi
    ;;
  watch)
    end=$(( $(date +%s) + $2 ))
    while [ "$(date +%s)" -lt "$end" ]; do
      if ! running; then echo "the round has ended"; break; fi
      sleep 15
    done
    for cfg in "${CFGS[@]}"; do
      run=$(out_dir "$cfg"); echo "== $run"
      tail -n 1 "$run/log.jsonl" 2>/dev/null | cut -c1-600
      tail -n 2 "$run/stdout.log"
    done
    ;;
  jit)
    # the first-use build (a3d/core/_jit.py) of the CUDA kernels, against the in-place one (docs/builds.md)
    python3 -m pytest -q -m cuda -p no:cacheprovider tests/test_jit.py 2>&1 | tail -4
    ;;
  finish)
    # what comes back: at most 8 files a call, so each run gives two, its weights and a tar of the rest
    out=$2
    while running; do sleep 5; done
    for cfg in "${CFGS[@]}"; do
      run=$(out_dir "$cfg"); name=$(basename "$run")
      tail -n 3 "$run/stdout.log"
      cp "$run/export/model.safetensors" "$out/$name.safetensors"
      tar -cf "$out/$name.tar" -C "$run" log.jsonl eval.json stdout.log export/config.json \
        $(cd "$run" && ls gallery_*.png 2>/dev/null)
    done
    timeout "${A3D_TEST_SECONDS:-240}" python3 -m pytest -q -m cuda -p no:cacheprovider --ignore tests/test_jit.py \
      --ignore tests/test_mesh.py tests 2>&1 | tail -4 || true
    ls -la "$out"
    ;;
  *)
    echo "usage: $0 build | launch MINUTES | watch SECONDS | jit | finish OUT" >&2
    exit 2
    ;;
esac
