#!/usr/bin/env bash
# Run the grid on one multi-GPU node.
#
# MODE=per_gpu (default; small models such as mt5-small/base): one grid worker per GPU,
#   each on its own GPU (CUDA_VISIBLE_DEVICES), cells split deterministically between them.
# MODE=whole_node (mt5-large and up): one worker whose mesh spans all GPUs; pick the sharding
#   with a hardware file (hardware/gpu_8.gin, gpu_8_fsdp.gin, gpu_8_fsdp_tp.gin).
#
#   RESULTS=/data/grid_xnli GIN="--gin_file=runs/grid_xnli.gin" bash launch/gpu_node.sh
#   MODE=whole_node GIN="--gin_file=runs/grid_xnli.gin --gin_file=hardware/gpu_8_fsdp.gin" \
#     RESULTS=/data/grid_large bash launch/gpu_node.sh
#
# Rerunning resumes (finished cells are skipped). Logs: $RESULTS/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${RESULTS:?set RESULTS to the results directory}"
GIN=${GIN:-"--gin_file=runs/grid_xnli.gin"}
MODE=${MODE:-per_gpu}
STAGE=${STAGE:-all}
JAXLT=${JAXLT:-.venv/bin/jaxlt}
NUM_GPUS=${NUM_GPUS:-$(nvidia-smi -L | wc -l)}
mkdir -p "$RESULTS/logs"

case "$MODE" in
  per_gpu)
    pids=()
    for ((i = 0; i < NUM_GPUS; i++)); do
      CUDA_VISIBLE_DEVICES=$i XLA_PYTHON_CLIENT_MEM_FRACTION=0.9 \
        $JAXLT grid $GIN --gin_file=hardware/gpu_1.gin --results_dir="$RESULTS" --stage="$STAGE" \
        --worker_index="$i" --num_workers="$NUM_GPUS" --no_progress > "$RESULTS/logs/worker_$i.log" 2>&1 &
      pids+=($!)
    done
    status=0
    for pid in "${pids[@]}"; do wait "$pid" || status=1; done
    exit $status
    ;;
  whole_node)
    exec $JAXLT grid $GIN --results_dir="$RESULTS" --stage="$STAGE" 2>&1 | tee "$RESULTS/logs/node.log"
    ;;
  *)
    echo "unknown MODE=$MODE (per_gpu or whole_node)" >&2
    exit 2
    ;;
esac
