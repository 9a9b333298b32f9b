"""jaxlt checkpoints: an orbax CheckpointManager directory plus two files beside its steps.

    MODEL_DIR/
      jaxlt_checkpoint.json   format version + model config (HF dict and jaxlt fields)
      spiece.model            the vocabulary, so the directory is self-contained
      <step>/params           parameters (orbax StandardSave, sharded arrays)
      <step>/opt_state        optimizer state
      <step>/meta             JSON: step, data position, metrics

Keeps the last `keep_last` steps and the `keep_best` best by `best_metric`
(orbax preservation policies). Saves are asynchronous by default. A state
whose parameters are not all finite is never saved (`save` checks, besides the
Trainer's own check of loss, gradient norm and parameters), so `keep_last` never
deletes the last finite checkpoint in favour of a diverged one; and inference
refuses a non-finite checkpoint written by older versions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import jax
import numpy as np
from etils import epath

from jaxlt import atomic
from jaxlt.errors import CheckpointError, DivergenceError
from jaxlt.model.config import JAXLT_FIELDS as JAXLT_CONFIG_FIELDS

log = logging.getLogger(__name__)

MARKER = "jaxlt_checkpoint.json"
FORMAT = "jaxlt-checkpoint"
FORMAT_VERSION = 1


def is_jaxlt_checkpoint(directory) -> bool:
    return (epath.Path(directory) / MARKER).exists()


@jax.jit
def _leaves_finite(leaves):
    return jax.numpy.all(jax.numpy.stack([jax.numpy.all(jax.numpy.isfinite(x)) for x in leaves]))


def all_finite(tree) -> bool:
    """Whether every floating-point leaf (device or host array) is free of NaN and inf."""
    leaves = [x for x in jax.tree.leaves(tree) if hasattr(x, "dtype") and np.issubdtype(x.dtype, np.inexact)]
    if not leaves:
        return True
    if all(isinstance(x, np.ndarray) for x in leaves):
        return all(bool(np.isfinite(x).all()) for x in leaves)
    return bool(jax.device_get(_leaves_finite(leaves)))


def _write_atomic(path: epath.Path, data: bytes) -> None:
    if "://" not in str(path):
        atomic.write_bytes(str(path), data)
    else:  # object stores: a single PUT is atomic already
        path.write_bytes(data)


def write_marker(directory, config, spm_path: str | None) -> None:
    """Writes jaxlt_checkpoint.json (config) and copies the SentencePiece model beside the steps."""
    directory = epath.Path(directory)
    hf = config.to_hf_dict()
    extra = {k: getattr(config, k) for k in JAXLT_CONFIG_FIELDS if hasattr(config, k)}
    marker = {"format": FORMAT, "version": FORMAT_VERSION, "config": hf, "jaxlt_config": extra}
    _write_atomic(directory / MARKER, json.dumps(marker, indent=2, sort_keys=True).encode())
    if spm_path:
        dest = directory / "spiece.model"
        src = epath.Path(spm_path)
        if src.is_dir():
            from jaxlt.data.vocabulary import find_sentencepiece_model

            src = epath.Path(find_sentencepiece_model(str(src)))
        if not dest.exists() or dest.read_bytes() != src.read_bytes():
            _write_atomic(dest, src.read_bytes())


def read_config(directory):
    """The T5Config stored in a jaxlt checkpoint directory."""
    from jaxlt.model.config import T5Config

    path = epath.Path(directory) / MARKER
    if not path.exists():
        raise FileNotFoundError(f"{directory} is not a jaxlt checkpoint (no {MARKER})")
    marker = json.loads(path.read_text())
    if marker.get("format") != FORMAT or marker.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported checkpoint format {marker.get('format')!r} "
                         f"version {marker.get('version')!r} (expected {FORMAT!r} v{FORMAT_VERSION})")
    config = T5Config.from_hf_dict(marker["config"])
    known = {f.name for f in dataclasses.fields(config)}
    extra = {k: v for k, v in marker.get("jaxlt_config", {}).items() if k in known}
    return dataclasses.replace(config, **extra)


def _manager(directory, keep_last: int, keep_best: int, best_metric: str | None, best_mode: str,
             async_save: bool, read_only: bool = False):
    import orbax.checkpoint as ocp
    from orbax.checkpoint import checkpoint_managers as cm

    policies = [cm.LatestN(n=keep_last)]
    if best_metric is not None and keep_best:
        if best_mode not in ("max", "min"):
            raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}")

        def metric(metrics):
            if best_metric not in metrics:
                raise KeyError(f"best_metric {best_metric!r} not among saved metrics {sorted(metrics)}")
            return float(metrics[best_metric])

        policies.append(cm.BestN(get_metric_fn=metric, reverse=(best_mode == "min"), n=keep_best,
                                 keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=cm.AnyPreservationPolicy(policies),
        best_fn=None if best_metric is None else (lambda m: float(m[best_metric])),
        best_mode=best_mode,
        enable_async_checkpointing=async_save, create=not read_only, read_only=read_only,
        cleanup_tmp_directories=not read_only)
    # Handlers registered up front so that item metadata (shapes, dtypes) can be read before restoring.
    handlers = {"params": ocp.StandardCheckpointHandler(), "opt_state": ocp.StandardCheckpointHandler(),
                "meta": ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(epath.Path(directory).absolute() if "://" not in str(directory)
                                 else epath.Path(directory), options=options, item_handlers=handlers)


class Checkpointer:
    """Saves and restores TrainStates in a jaxlt checkpoint directory (see module docstring)."""

    def __init__(self, directory, config, spm_path: str | None, keep_last: int = 1, keep_best: int = 1,
                 best_metric: str | None = None, best_mode: str = "max", async_save: bool = True):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1 (resuming needs the last step), got {keep_last}")
        self.directory = epath.Path(directory)
        self.config = config
        self.best_metric = best_metric
        self.best_mode = best_mode
        self._best_value = _read_best_value(self.directory, best_metric)
        _check_same_model(self.directory, config)
        if jax.process_index() == 0:
            write_marker(self.directory, config, spm_path)
        self._manager = _manager(directory, keep_last, keep_best, best_metric, best_mode, async_save)

    def save(self, step: int, state, metrics: dict | None = None, data_position: int | None = None) -> None:
        """Saves `state` at `step` (async unless async_save=False); `metrics` feed best-checkpoint keeping."""
        import orbax.checkpoint as ocp

        step = int(step)
        metrics = {k: float(v) for k, v in (metrics or {}).items()}
        for k, v in metrics.items():
            if not np.isfinite(v):
                raise ValueError(f"refusing to save step {step}: metric {k} = {v} is not finite")
        if not all_finite(state.params):
            raise DivergenceError(f"refusing to save step {step} in {self.directory}: its parameters are not "
                                  "finite (the run diverged); the last finite checkpoint is kept",
                                  step=step, reason="the parameters are not finite",
                                  last_good_step=self.latest_step())
        meta = {"step": step, "data_position": step if data_position is None else int(data_position),
                "metrics": metrics}
        items = {"params": ocp.args.StandardSave(state.params), "meta": ocp.args.JsonSave(meta)}
        if jax.tree.leaves(state.opt_state):  # orbax refuses empty items (e.g. plain SGD has no state)
            items["opt_state"] = ocp.args.StandardSave(state.opt_state)
        self._manager.save(step, args=ocp.args.Composite(**items), metrics=metrics or None, force=True)
        if self.best_metric is not None and self.best_metric in metrics:
            value = metrics[self.best_metric]
            better = (self._best_value is None or
                      (value > self._best_value if self.best_mode == "max" else value < self._best_value))
            if better and jax.process_index() == 0:
                self._best_value = value
                write_best_step(self.directory, step, self.best_metric, value)

    def wait_until_finished(self) -> None:
        self._manager.wait_until_finished()

    def restore(self, step: int | None = None, abstract_state=None):
        """Restores a TrainState (onto `abstract_state`'s shardings when given) and its meta dict.

        Returns (state, meta) where meta has "step", "data_position", "metrics".
        """
        import orbax.checkpoint as ocp

        from jaxlt.train.state import TrainState

        self._manager.wait_until_finished()
        step = self.latest_step() if step is None else int(step)
        if step is None:
            raise FileNotFoundError(f"no checkpoint steps in {self.directory}")
        if step not in self._manager.all_steps():
            raise FileNotFoundError(f"no step {step} in {self.directory}; steps: {self._manager.all_steps()}")
        has_opt_state = (epath.Path(self.directory) / str(step) / "opt_state").exists()
        if abstract_state is None:
            meta = self._manager.item_metadata(step)
            params_target = _replicated_target(meta["params"])
            opt_target = _replicated_target(meta["opt_state"]) if has_opt_state else None
        else:
            params_target, opt_target = abstract_state.params, abstract_state.opt_state
        items = {"params": ocp.args.StandardRestore(params_target), "meta": ocp.args.JsonRestore()}
        if has_opt_state:
            items["opt_state"] = ocp.args.StandardRestore(opt_target)
        restored = dict(self._manager.restore(step, args=ocp.args.Composite(**items)))
        if not has_opt_state:  # saved without leaves: the (empty) structure is all there is
            restored["opt_state"] = opt_target
        step_value = np.int32(restored["meta"]["step"])
        if abstract_state is not None:
            step_value = jax.device_put(step_value, abstract_state.step.sharding) \
                if hasattr(abstract_state.step, "sharding") and abstract_state.step.sharding is not None \
                else step_value
        state = TrainState(step=step_value, params=restored["params"], opt_state=restored["opt_state"])
        return state, dict(restored["meta"])

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def best_step(self) -> int | None:
        return self._manager.best_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def metrics(self, step: int) -> dict:
        return self._manager.metrics(step) or {}

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_same_model(directory, config) -> None:
    """Refuses to mix checkpoints of two architectures in one directory (e.g. a reused MODEL_DIR)."""
    path = epath.Path(directory) / MARKER
    if not path.exists():
        return
    old = json.loads(path.read_text()).get("config", {})
    new = config.to_hf_dict()
    diff = [f"{k}: {old.get(k)!r} there vs {new.get(k)!r} now" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]
    if diff:
        raise ValueError(f"{directory} already holds checkpoints of a different model config ("
                         + "; ".join(diff[:5]) + "); use another directory")


def _replicated_target(metadata_tree):
    """Abstract arrays (shape, dtype, single-device sharding) from orbax item metadata."""
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def leaf(m):
        if hasattr(m, "shape") and hasattr(m, "dtype"):
            return jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=sharding)
        return m

    return jax.tree.map(leaf, metadata_tree, is_leaf=lambda m: hasattr(m, "shape") and hasattr(m, "dtype"))


def load_inference_params(directory, step: int | None = None, use: str = "best") -> tuple[Any, Any]:
    """(T5Config, params) from a jaxlt checkpoint: `step`, else the best step if any, else the latest.

    Only the parameters are read (not the optimizer state), onto one device.
    """
    import orbax.checkpoint as ocp

    config = read_config(directory)
    manager = _manager(directory, 1, 0, None, "max", async_save=False, read_only=True)
    steps = list(manager.all_steps())
    if not steps:
        raise FileNotFoundError(f"{directory} has a {MARKER} but no checkpoint steps")
    if step is None:
        step = _best_step_from_meta(manager, steps) if use == "best" else None
        step = max(steps) if step is None else step
    elif step not in steps:
        raise FileNotFoundError(f"no step {step} in {directory}; steps: {steps}")
    metadata = manager.item_metadata(step)["params"]
    if metadata is None:
        raise ValueError(f"{directory} step {step}: no parameter metadata (incomplete or foreign checkpoint)")
    target = _replicated_target(metadata)
    restored = manager.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(target)))
    if not all_finite(restored["params"]):
        others = [s for s in steps if s != step]
        raise CheckpointError(
            f"{directory} step {step} has non-finite (NaN or inf) parameters: the run diverged",
            hint=(f"choose another step ({', '.join(map(str, others))})" if others else
                  "retrain with a lower learning rate"))
    log.info("loaded jaxlt checkpoint %s step %d", directory, step)
    return config, restored["params"]


def _best_step_from_meta(manager, steps):
    """The step recorded in best_step.json by the run's Checkpointer, if it still exists."""
    best_file = epath.Path(manager.directory) / "best_step.json"
    if best_file.exists():
        step = json.loads(best_file.read_text()).get("step")
        if step in steps:
            return step
    return None


def _read_best_value(directory, metric):
    best_file = epath.Path(directory) / "best_step.json"
    if metric is None or not best_file.exists():
        return None
    data = json.loads(best_file.read_text())
    return data["value"] if data.get("metric") == metric else None


def write_best_step(directory, step: int, metric: str, value: float) -> None:
    """Records which step was best by `metric` (read by load_inference_params)."""
    data = {"step": int(step), "metric": metric, "value": float(value)}
    _write_atomic(epath.Path(directory) / "best_step.json", json.dumps(data).encode())


