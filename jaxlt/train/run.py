"""Gin-configured runs behind `jaxlt train` and `jaxlt evaluate` (t5x conventions).

gin/runs/finetune.gin binds `train_run`'s arguments to the required macros
MODEL_DIR, MIXTURE_OR_TASK_NAME, TRAIN_STEPS, BATCH_SIZE, INITIAL_CHECKPOINT_PATH
and TASK_FEATURE_LENGTHS; gin/runs/eval.gin binds `evaluate_run`'s to
CHECKPOINT_PATH, MIXTURE_OR_TASK_NAME, EVAL_OUTPUT_DIR, BATCH_SIZE and
TASK_FEATURE_LENGTHS. gin/models/*.gin set MODEL_NAME and `model_settings`;
gin/hardware/*.gin set the mesh and logical-axis rules.

The model overrides, the optimizer with its loss and the hardware (mesh and rules) are typed
configs (`jaxlt.experiment`: `jaxlt.train.model_settings.*`, `OptimizerConfig.*`;
`jaxlt.partitioning.PartitioningConfig`), built from gin once by the command and passed in,
exactly as `jaxlt grid` builds and passes them. Nothing here imports or reads gin: the gin names
`jaxlt.train.train_run`, `.evaluate_run` and `.setup_jax` are registered by
`jaxlt.commands.run_config`, which resolves their bindings into plain keyword arguments.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from collections.abc import Sequence

from jaxlt import partitioning
from jaxlt.experiment import ModelConfig, OptimizerConfig
from jaxlt.partitioning import PartitioningConfig

log = logging.getLogger(__name__)

TRAIN_MACROS = ("MODEL_DIR", "MIXTURE_OR_TASK_NAME", "TRAIN_STEPS", "BATCH_SIZE", "INITIAL_CHECKPOINT_PATH",
                "TASK_FEATURE_LENGTHS")
EVAL_MACROS = ("CHECKPOINT_PATH", "MIXTURE_OR_TASK_NAME", "EVAL_OUTPUT_DIR", "BATCH_SIZE",
               "TASK_FEATURE_LENGTHS")
DEFAULT_TASK_MODULES = ("jaxlt.data.tasks",)


def setup_jax(distributed: bool = False, coordinator_address: str | None = None,
              num_processes: int | None = None, process_id: int | None = None,
              compilation_cache_dir: str | None = None) -> None:
    """Multi-host initialisation (`jax.distributed.initialize`) and the persistent compilation cache.

    On TPU VMs and SLURM/GPU clusters `distributed=True` is enough (jax finds
    the coordinator); elsewhere pass coordinator_address, num_processes, process_id.
    """
    import jax

    if compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", compilation_cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    if distributed:
        kwargs = {k: v for k, v in dict(coordinator_address=coordinator_address, num_processes=num_processes,
                                        process_id=process_id).items() if v is not None}
        jax.distributed.initialize(**kwargs)
        log.info("jax.distributed: process %d of %d, %d global devices", jax.process_index(),
                 jax.process_count(), jax.device_count())


def import_task_modules(modules: Sequence[str]) -> None:
    """Imports modules that register seqio tasks; "module:function" also calls function().

    The commands call this before gin is finalized (modules may declare gin configurables);
    `train_run` / `evaluate_run` call it again, which only imports what is not imported yet.
    """
    for spec in modules:
        module, _, fn = spec.partition(":")
        mod = importlib.import_module(module)
        if fn:
            getattr(mod, fn)()


def import_before_parsing() -> None:
    """Modules whose gin configurables gin files may bind: imported before parsing."""
    for module in DEFAULT_TASK_MODULES:
        importlib.import_module(module)


ARCHITECTURE_FIELDS = ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
                       "feed_forward_proj", "tie_word_embeddings")


def load_model(initial_checkpoint_path: str | None, model_name: str | None, overrides: dict, seed: int):
    """(config, params, spm_path) from a checkpoint (HF dir or hub id, or jaxlt dir), or a random
    init of `model_name` when initial_checkpoint_path is None / "random"."""
    import dataclasses

    import jax

    from jaxlt.model.config import get_config

    if initial_checkpoint_path in (None, "", "random", "none", "None"):
        if not model_name:
            raise ValueError("INITIAL_CHECKPOINT_PATH is None (random init) but MODEL_NAME is not set; "
                             "add a gin/models/*.gin file or --gin.MODEL_NAME=\"'mt5_small'\"")
        from jaxlt.model.network import init_params

        config = get_config(model_name, **overrides)
        log.info("random initialisation of %s (seed %d)", model_name, seed)
        return config, init_params(config, jax.random.key(seed)), None
    from jaxlt.model.loading import load_checkpoint

    loaded = load_checkpoint(initial_checkpoint_path)
    config = loaded.config
    if model_name:
        expected = get_config(model_name)
        diff = [f"{f}: checkpoint {getattr(config, f)} vs {model_name} {getattr(expected, f)}"
                for f in ARCHITECTURE_FIELDS if getattr(config, f) != getattr(expected, f)]
        if diff:
            raise ValueError(f"INITIAL_CHECKPOINT_PATH {initial_checkpoint_path} does not match MODEL_NAME "
                             f"{model_name}: " + "; ".join(diff))
    known = {f.name for f in dataclasses.fields(config)}
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if k in known})
    spm = getattr(loaded.vocabulary, "sentencepiece_model_file", None) if loaded.vocabulary is not None else None
    return config, loaded.params, spm


def checkpoint_vocabulary(path: str | None) -> str | None:
    """The SentencePiece model of a checkpoint (HF dir, hub id, jaxlt dir); None for a random init."""
    if path in (None, "", "random", "none", "None"):
        return None
    from jaxlt.data.vocabulary import find_sentencepiece_model
    from jaxlt.model.loading import resolve_checkpoint_path

    try:
        return find_sentencepiece_model(resolve_checkpoint_path(path))
    except FileNotFoundError:
        return None


def _mesh_and_rules(hardware: PartitioningConfig | None):
    """The mesh and rules of `hardware` (a gin/hardware file, built by the command); None:
    data-parallel over every device."""
    if hardware is None:
        return partitioning.create_mesh((-1, 1)), partitioning.DATA_PARALLEL_RULES
    return hardware.make_mesh(), hardware.rules()


def _task_vocabulary_path(task_name: str) -> str | None:
    import seqio

    vocab = seqio.get_mixture_or_task(task_name).output_features["targets"].vocabulary
    return getattr(vocab, "sentencepiece_model_file", None)


def _eval_task_names(names: Sequence[str] | str | None, mixture_or_task_name: str) -> list[str]:
    import seqio

    if names:
        return [names] if isinstance(names, str) else list(names)
    provider = seqio.get_mixture_or_task(mixture_or_task_name)
    return [t.name for t in getattr(provider, "tasks", [provider])]


def train_run(*, model_dir: str, mixture_or_task_name: str, train_steps: int, batch_size: int,
              initial_checkpoint_path: str | None, task_feature_lengths: dict,
              model_name: str | None = None, seed: int = 0, accumulation_steps: int = 1,
              eval_every: int | None = None, checkpoint_every: int | None = None,
              eval_task_names: Sequence[str] | None = None, eval_split: str = "validation",
              eval_batch_size: int | None = None, max_decode_length: int | None = None,
              rank_classification: bool = False, best_metric: str | None = None, best_mode: str = "max",
              keep_last: int = 1, keep_best: int = 1, async_checkpointing: bool = True,
              pack: bool = False, task_modules: Sequence[str] = DEFAULT_TASK_MODULES,
              tensorboard: bool = True, compiler_options: dict | None = None,
              progress: bool = True, model: ModelConfig | None = None,
              optimizer: OptimizerConfig | None = None, hardware: PartitioningConfig | None = None) -> dict:
    """Fine-tunes and checkpoints into model_dir; resumes exactly if model_dir has a checkpoint.

    Model selection: with eval_every (e.g. 200) and best_metric (e.g. "accuracy")
    the eval tasks (default: the mixture's tasks) are evaluated on eval_split and
    the best checkpoint is kept beside the last; `jaxlt evaluate` loads the best.
    `model` (overrides of the checkpoint's config) and `optimizer` (optimizer, schedule and
    loss) default to the paper's recipe; `hardware` (mesh and sharding rules) to data-parallel.
    """
    import jax

    from jaxlt.train.checkpointing import Checkpointer
    from jaxlt.train.data import train_batches
    from jaxlt.train.engine import Trainer
    from jaxlt.train.evaluation import evaluate_task, write_evaluation
    from jaxlt.train.metrics_writing import create_writer

    model, optimizer = model or ModelConfig(), optimizer or OptimizerConfig()
    import_task_modules(task_modules)
    config, params, spm = load_model(initial_checkpoint_path, model_name, model.overrides(), seed)
    spm = spm or _task_vocabulary_path(mixture_or_task_name)
    mesh, rules = _mesh_and_rules(hardware)
    trainer = Trainer(config, batch_size=batch_size, feature_lengths=task_feature_lengths, mesh=mesh,
                      rules=rules, optimizer=optimizer.make(), accumulation_steps=accumulation_steps,
                      packed=pack, compiler_options=compiler_options, **optimizer.loss_kwargs())
    checkpointer = Checkpointer(model_dir, config, spm, keep_last=keep_last, keep_best=keep_best,
                                best_metric=best_metric, best_mode=best_mode, async_save=async_checkpointing)
    state = trainer.resume_or_init(params, checkpointer)
    del params
    writer = create_writer(model_dir, tensorboard=tensorboard)
    eval_fn = None
    if eval_every:
        tasks = _eval_task_names(eval_task_names, mixture_or_task_name)
        decode_len = max_decode_length or trainer.lengths["targets"]
        eval_dir = os.path.join(model_dir, "eval")

        def eval_fn(params, step):
            merged = {}
            for task in tasks:
                metrics, predictions = evaluate_task(
                    trainer, params, task, eval_split, batch_size=eval_batch_size or batch_size,
                    max_decode_length=decode_len, rank_classification=rank_classification)
                if jax.process_index() == 0:
                    write_evaluation(os.path.join(eval_dir, f"step_{step}"), task, eval_split, metrics,
                                     predictions, step)
                for k, v in metrics.items():
                    merged[k if len(tasks) == 1 else f"{task}/{k}"] = v
            if len(tasks) > 1 and best_metric and best_metric not in merged:
                vals = [merged[f"{t}/{best_metric}"] for t in tasks if f"{t}/{best_metric}" in merged]
                if vals:
                    merged[best_metric] = sum(vals) / len(vals)
            return merged

    t0 = time.time()
    batches = train_batches(mixture_or_task_name, task_feature_lengths, batch_size, seed=seed, pack=pack)
    state, history = trainer.train(state, batches, train_steps, seed=seed, checkpointer=checkpointer,
                                   eval_every=eval_every, eval_fn=eval_fn, progress=progress,
                                   checkpoint_every=checkpoint_every, writer=writer)
    checkpointer.close()
    writer.close()
    steps = [h for h in history if "loss" in h]
    summary = {"model_dir": model_dir, "final_step": int(jax.device_get(state.step)),
               "final_loss": steps[-1]["loss"] if steps else None, "wall_seconds": time.time() - t0,
               "compile_seconds": trainer.compile_seconds, "best_step": checkpointer.best_step()}
    log.info("training done: %s", json.dumps(summary))
    return summary


def evaluate_run(*, checkpoint_path: str, mixture_or_task_name: str, output_dir: str, batch_size: int,
                 task_feature_lengths: dict, split: str | Sequence[str] = "validation", step: int | None = None,
                 max_decode_length: int | None = None, rank_classification: bool = False,
                 label_strings: Sequence[str] | None = None, max_examples: int | None = None,
                 task_modules: Sequence[str] = DEFAULT_TASK_MODULES, compiler_options: dict | None = None,
                 progress: bool = True, model: ModelConfig | None = None,
                 hardware: PartitioningConfig | None = None) -> dict:
    """Evaluates a checkpoint (jaxlt: its best step, else the last; or an HF dir / hub id) on every
    task of mixture_or_task_name and every split in `split` (a name or a list); writes
    {task}.{split}.metrics.json and .predictions.jsonl. Returns {"task/split": metrics}."""
    import jax

    import dataclasses

    from jaxlt.train.engine import Trainer
    from jaxlt.train.evaluation import evaluate_task, write_evaluation

    import_task_modules(task_modules)
    from jaxlt.model.loading import load_checkpoint

    loaded = load_checkpoint(checkpoint_path, step=step)
    model = model or ModelConfig()
    overrides = {k: v for k, v in model.overrides().items() if k in ("dtype", "param_dtype", "scan_unroll")}
    config = dataclasses.replace(loaded.config, **overrides)
    mesh, rules = _mesh_and_rules(hardware)
    trainer = Trainer(config, batch_size=batch_size, feature_lengths=task_feature_lengths, mesh=mesh, rules=rules,
                      compiler_options=compiler_options)
    params = trainer.place_params(loaded.params)
    results = {}
    for task in _eval_task_names(None, mixture_or_task_name):
        for one_split in [split] if isinstance(split, str) else list(split):
            metrics, predictions = evaluate_task(
                trainer, params, task, one_split, vocabulary=loaded.vocabulary, batch_size=batch_size,
                max_decode_length=max_decode_length or trainer.lengths["targets"],
                rank_classification=rank_classification, label_strings=label_strings,
                max_examples=max_examples, progress=progress)
            if jax.process_index() == 0:
                write_evaluation(output_dir, task, one_split, metrics, predictions, step,
                                 extra={"checkpoint": str(checkpoint_path)})
            results[f"{task}/{one_split}"] = metrics
            log.info("%s %s: %s", task, one_split, json.dumps(metrics))
    return results
