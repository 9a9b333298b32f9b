#!/usr/bin/env bash
# Run the grid on a Cloud TPU VM (single host or pod slice): every TPU worker runs the same
# command; `--multihost` makes them one JAX process group (jax.distributed.initialize), so one
# grid worker spans the whole slice. Several slices = several grid workers (WORKER/NUM_WORKERS).
#
#   TPU=my-v4-32 ZONE=us-central2-b RESULTS=/mnt/shared/grid_xnli \
#   GIN="--gin_file=runs/grid_xnli.gin --gin_file=hardware/tpu_v4_8.gin" bash launch/tpu_vm.sh
#
# RESULTS must be a directory every host sees (Filestore/NFS mount, or gcsfuse): host 0 writes
# the records and checkpoints are written collectively by orbax. First run: SETUP=1 clones and
# installs on all workers.
set -euo pipefail
: "${TPU:?set TPU to the TPU VM name}" "${ZONE:?set ZONE}" "${RESULTS:?set RESULTS to a shared directory}"
GIN=${GIN:-"--gin_file=runs/grid_xnli.gin --gin_file=hardware/tpu_v4_8.gin"}
WORKER=${WORKER:-0}
NUM_WORKERS=${NUM_WORKERS:-1}
STAGE=${STAGE:-all}
REPO=${REPO:-https://github.com/jaxlt/jaxlt.git}
DIR=${DIR:-jaxlt}
PROJECT_FLAG=${PROJECT:+--project=$PROJECT}

ssh_all() {
  gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" $PROJECT_FLAG --worker=all --command="$1"
}

if [[ "${SETUP:-0}" == 1 ]]; then
  ssh_all "test -d $DIR || git clone $REPO $DIR; cd $DIR && bash launch/install.sh .venv train,tpu"
fi

# nohup + log per host, so a dropped ssh session does not kill the run; rerunning resumes.
ssh_all "cd $DIR && nohup .venv/bin/jaxlt grid $GIN --results_dir=$RESULTS --stage=$STAGE \
  --worker_index=$WORKER --num_workers=$NUM_WORKERS --multihost --no_progress \
  > grid_\$(hostname).log 2>&1 &"
echo "started on all workers of $TPU; logs: ~/$DIR/grid_<host>.log; progress: jaxlt results summary --results_dir=$RESULTS"
