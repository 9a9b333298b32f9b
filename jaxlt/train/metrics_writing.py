"""Training metrics to a JSONL file and TensorBoard, through clu's metric writers."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

import jax
from clu import metric_writers


class JsonlWriter(metric_writers.MetricWriter):
    """Appends one JSON object per `write_scalars` call: {"step": s, "time": t, name: value, ...}.

    Lines are flushed as written, so a killed run keeps every completed step; a
    resumed run appends (rows with the same step may then appear twice, the
    later one being the resumed run's).
    """

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self._f = open(path, "a", encoding="utf-8")

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        row = {"step": int(step), "time": time.time(), **{k: float(v) for k, v in scalars.items()}}
        self._f.write(json.dumps(row) + "\n")
        self._f.flush()

    def write_images(self, step, images):  # not used by jaxlt
        pass

    def write_videos(self, step, videos):
        pass

    def write_audios(self, step, audios, *, sample_rate):
        pass

    def write_texts(self, step, texts):
        pass

    def write_histograms(self, step, arrays, num_buckets=None):
        pass

    def write_summaries(self, step, values, metadata=None):
        pass

    def write_hparams(self, hparams):
        self._f.write(json.dumps({"hparams": {k: str(v) for k, v in hparams.items()}}) + "\n")
        self._f.flush()

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def create_writer(model_dir: str, tensorboard: bool = True, jsonl_name: str = "train_metrics.jsonl"):
    """JSONL (model_dir/train_metrics.jsonl) + TensorBoard (model_dir/tensorboard) on the main process;
    a no-op writer on the others."""
    if jax.process_index() != 0:
        return metric_writers.MultiWriter([])
    writers: list[metric_writers.MetricWriter] = [JsonlWriter(os.path.join(model_dir, jsonl_name))]
    if tensorboard:
        writers.append(metric_writers.SummaryWriter(os.path.join(model_dir, "tensorboard")))
    return metric_writers.MultiWriter(writers)
