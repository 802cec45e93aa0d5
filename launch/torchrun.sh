#!/usr/bin/env bash
# Multi-GPU and multi-node training without SLURM: torchrun starts one process per GPU, Lightning
# detects it (TorchElasticEnvironment) and spawns nothing itself. Run the same command on every node
# (from the repository root, on a filesystem all nodes share); extra arguments are Hydra overrides.
#
#   # one node, all its GPUs
#   bash launch/torchrun.sh value=benevolence method=dpo strategy=ddp batch.global_size=32
#   # two nodes x 8 GPUs: the same line on both nodes, MASTER_ADDR = a host name of node 0
#   NNODES=2 NPROC_PER_NODE=8 MASTER_ADDR=node0 RUN_DIR=outputs/train/runs/zero3-2x8 \
#     bash launch/torchrun.sh value=benevolence method=dpo strategy=deepspeed_zero3 batch.global_size=64
#
# Settings (environment):
#   NNODES          nodes (default 1)
#   NPROC_PER_NODE  processes = GPUs per node (default: the GPUs nvidia-smi lists)
#   MASTER_ADDR     rendezvous host, reachable from every node (default localhost)
#   MASTER_PORT     rendezvous port (default 29500)
#   RUN_ID          rendezvous id, the same on every node (default vat)
#   RUN_DIR         the run dir, the same on every node (every rank writes there); required with
#                   NNODES > 1, by default outputs/train/runs/torchrun_<time> on one node
#   TORCHRUN        the launcher command (default: torchrun)
#   DRY_RUN=1       print the command instead of running it
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NNODES=${NNODES:-1}
if [[ -z "${NPROC_PER_NODE:-}" ]]; then
  if [[ "${DRY_RUN:-0}" == 1 ]] || ! command -v nvidia-smi >/dev/null; then
    echo "torchrun.sh: set NPROC_PER_NODE (the GPUs per node)" >&2
    exit 2
  fi
  NPROC_PER_NODE=$(nvidia-smi --list-gpus | wc -l)
fi
MASTER_ADDR=${MASTER_ADDR:-localhost}
MASTER_PORT=${MASTER_PORT:-29500}
RUN_ID=${RUN_ID:-vat}
if [[ -z "${RUN_DIR:-}" ]]; then
  if (( NNODES > 1 )); then
    echo "torchrun.sh: set RUN_DIR, the same path on every node (a per-node default would split the run)" >&2
    exit 2
  fi
  RUN_DIR="outputs/train/runs/torchrun_$(date +%Y-%m-%d_%H-%M-%S)"
fi
read -r -a LAUNCHER <<<"${TORCHRUN:-torchrun}"

# trainer.devices and trainer.num_nodes must match what torchrun starts (vat.launch.check_launch
# refuses a mismatch); an explicit hydra.run.dir keeps every rank in one run dir.
cmd=("${LAUNCHER[@]}"
  --nnodes="$NNODES" --nproc_per_node="$NPROC_PER_NODE"
  --rdzv_backend=c10d --rdzv_endpoint="$MASTER_ADDR:$MASTER_PORT" --rdzv_id="$RUN_ID"
  train.py
  hydra.run.dir="$RUN_DIR"
  trainer.devices="$NPROC_PER_NODE" trainer.num_nodes="$NNODES"
  "$@")

if [[ "${DRY_RUN:-0}" == 1 ]]; then
  printf '%q ' "${cmd[@]}"
  printf '\n'
else
  exec "${cmd[@]}"
fi
