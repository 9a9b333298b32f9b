#!/usr/bin/env bash
# Two SLURM arrays: source fine-tunes (+ zero-shot) first, then the few-shot cells once every
# source checkpoint exists (afterok dependency). Each array task is one grid worker.
#
#   RESULTS=/scratch/grid_xnli SOURCE_WORKERS=15 FEWSHOT_WORKERS=64 \
#   GIN="--gin_file=runs/grid_xnli.gin --gin_file=hardware/gpu_1.gin" bash launch/slurm_submit.sh
#
# Check progress with `jaxlt results summary --results_dir=$RESULTS`; `--dry_run` shows the plan.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${RESULTS:?set RESULTS to a directory every node sees}"
SOURCE_WORKERS=${SOURCE_WORKERS:-8}
FEWSHOT_WORKERS=${FEWSHOT_WORKERS:-32}
export RESULTS GIN="${GIN:-"--gin_file=runs/grid_xnli.gin --gin_file=hardware/gpu_1.gin"}" JAXLT_DIR=$PWD
mkdir -p logs
first=$(sbatch --parsable --array=0-$((SOURCE_WORKERS - 1)) --export=ALL,STAGE=source launch/slurm_array.sbatch)
second=$(sbatch --parsable --array=0-$((FEWSHOT_WORKERS - 1)) --dependency=afterok:"$first" \
  --export=ALL,STAGE=fewshot launch/slurm_array.sbatch)
echo "source stage: job $first ($SOURCE_WORKERS tasks); few-shot stage: job $second ($FEWSHOT_WORKERS tasks)"
