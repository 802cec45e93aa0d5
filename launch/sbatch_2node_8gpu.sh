#!/bin/bash
# 2 node(s) x 8 GPU(s). From the repository root: sbatch launch/sbatch_2node_8gpu.sh [more Hydra overrides]
# Rendered by: python -m vat.launch sbatch --nodes 2 --gpus-per-node 8 --time 24:00:00 -- method=dpo strategy=deepspeed_zero3 trainer.precision=bf16-mixed batch.micro_size=4 batch.global_size=64
#SBATCH --job-name=vat
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --gres=gpu:8
#SBATCH --time=24:00:00
#SBATCH --signal=SIGUSR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out

set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"  # the repository root you ran sbatch from
# One run dir per job, shared by every rank and kept when the job is requeued (same job id), so the
# requeued job resumes from the hpc_ckpt_*.ckpt that the walltime guard saved there.
RUN_DIR="${VAT_RUN_DIR:-outputs/train/slurm/${SLURM_JOB_ID}}"
PYTHON="${PYTHON:-python}"
echo "vat: job ${SLURM_JOB_ID} (restart ${SLURM_RESTART_COUNT:-0}): ${SLURM_NNODES} node(s) x ${SLURM_NTASKS_PER_NODE} task(s) -> $RUN_DIR"

# One task per device: Lightning sees SLURM (srun) and starts no processes of its own. devices and
# num_nodes come from the allocation, so `sbatch --nodes=4 <this script>` stays consistent.
srun --kill-on-bad-exit=1 "$PYTHON" train.py \
  hydra.run.dir="$RUN_DIR" \
  trainer.devices="$SLURM_NTASKS_PER_NODE" \
  trainer.num_nodes="$SLURM_NNODES" \
  '++trainer.plugins=[{_target_:vat.launch.slurm_environment,requeue_signal:SIGUSR1}]' \
  method=dpo \
  strategy=deepspeed_zero3 \
  trainer.precision=bf16-mixed \
  batch.micro_size=4 \
  batch.global_size=64 \
  "$@"
