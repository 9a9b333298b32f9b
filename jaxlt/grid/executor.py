"""The real cell executor: Flax mT5 through one `jaxlt.train.engine.Trainer` for the whole grid.

Efficiency, by construction:
* one Trainer (one compiled train step, one compiled decode per eval shape) per process;
* the pre-trained parameters stay on the devices; each run starts from them or from
  a source model with `Trainer.init_state(params)` (a device-side copy, no disk read);
* a source checkpoint is read at most once per process (the runner keeps the model);
* evaluation sets are tokenised and padded once per (task, target) and cached;
* nested n-shot sets go through the seqio pipeline once per (task, target, seed, sampling).

Data comes from the data engineer's seqio mixtures (`jaxlt.data.mixtures`: source
subset, nested n-shot set, joint mixture), batched with seqio's
`EncDecFeatureConverter`; metrics are the tasks' metric functions.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time

import numpy as np

import jaxlt.data.tf_cpu  # noqa: F401  (hides accelerators from TensorFlow before seqio / JAX)
from jaxlt.grid.cells import Cell, SourceRun
from jaxlt.grid.executor_api import Timings
from jaxlt.grid.settings import GridSettings

log = logging.getLogger(__name__)


from jaxlt.data.sources import BUNDLED_PREFIX, resolve_data_dir  # noqa: E402,F401  (importable from here too)


def load_model(spec: str, init_seed: int = 0, vocabulary: str = ""):
    """(T5Config, unboxed params, SentencePiece path) for "init:CONFIG_NAME" (a freshly initialised
    model, seeded) or a checkpoint: Hugging Face directory or hub id, or a jaxlt checkpoint."""
    import jax
    from flax import linen as nn

    from jaxlt.data.tasks import TINY_VOCABULARY
    from jaxlt.data.vocabulary import find_sentencepiece_model

    if spec.startswith("init:"):
        from jaxlt.model.config import get_config
        from jaxlt.model.network import init_params

        config = get_config(spec[len("init:"):])
        params = nn.meta.unbox(init_params(config, jax.random.key(init_seed)))
        return config, params, find_sentencepiece_model(vocabulary or TINY_VOCABULARY)
    from jaxlt.model.loading import load_checkpoint, resolve_checkpoint_path

    loaded = load_checkpoint(spec)
    return loaded.config, loaded.params, find_sentencepiece_model(vocabulary or resolve_checkpoint_path(spec))


def load_pretrained(settings: GridSettings):
    """The grid's pre-trained model (`settings.model`), with the model config's overrides applied."""
    model = settings.model
    config, params, spm = load_model(model.pretrained, model.init_seed, model.vocabulary)
    return config.replace(**model.overrides()), params, spm


class TrainerCatalog:
    """What the runner checks before any training, without loading a model: which languages
    each task has (in the data directory when one is set) and whether a checkpoint is complete."""

    def __init__(self, settings: GridSettings):
        # The data directory is explicit (None: the hub, or a dataset's own data_dir).
        self.data_dir = resolve_data_dir(settings.data.data_dir) if settings.data.data_dir else None
        self.settings = settings

    def check(self, cells) -> None:
        """Data files, n-shot pools, the pre-trained checkpoint and the vocabulary, without loading
        a model: one UserError naming every problem (before the results directory is claimed)."""
        from jaxlt.grid.preflight import check_trainer_inputs

        check_trainer_inputs(self.settings, cells, self.data_dir)

    def available_languages(self, task: str):
        from jaxlt.data import sources

        spec = sources.get_spec(task)  # KeyError naming the known datasets
        if self.data_dir or spec.data_dir:
            return sources.local_languages(task, self.data_dir)
        return spec.languages

    @staticmethod
    def has_checkpoint(checkpoint_dir: str) -> bool:
        from jaxlt.train.checkpointing import is_jaxlt_checkpoint

        return (os.path.isdir(checkpoint_dir) and is_jaxlt_checkpoint(checkpoint_dir)
                and any(name.isdigit() for name in os.listdir(checkpoint_dir)))


class TrainerExecutor:
    def __init__(self, settings: GridSettings, *, trainer=None, progress: bool = False, hardware=None):
        """Loads the pre-trained model once and builds the one Trainer (`trainer` to share one) on
        `hardware` (a `jaxlt.partitioning.PartitioningConfig` the command built from gin/hardware;
        None: data-parallel over every device)."""
        from jaxlt.data.vocabulary import get_vocabulary
        from jaxlt.train.engine import Trainer

        self.settings, self.progress = settings, progress
        self.catalog = TrainerCatalog(settings)
        self.data_dir = self.catalog.data_dir
        self.config, params, self.spm_path = load_pretrained(settings)
        self.vocabulary = get_vocabulary(self.spm_path)  # explicit: every task below is registered over it
        self.lengths = settings.data.lengths  # the longest of each feature, with per-task lengths
        if trainer is None:
            mesh, rules = (hardware.make_mesh(), hardware.rules()) if hardware is not None else (None, None)
            trainer = Trainer(self.config, batch_size=settings.data.batch_size, feature_lengths=self.lengths,
                              optimizer=settings.optimizer.make(), mesh=mesh, rules=rules,
                              accumulation_steps=settings.data.accumulation_steps,
                              **settings.optimizer.loss_kwargs())
        self.trainer = trainer  # evaluation (any lengths), and training at its own lengths
        # Trainers by (input, target length, learning rate): per-task lengths and diverged-run retries.
        self._trainers = {(trainer.lengths["inputs"], trainer.lengths["targets"], None): trainer}
        self.pretrained = trainer.place_params(params)  # stays on the devices for the whole grid
        self._eval_cache: dict[tuple[str, str], tuple[np.ndarray, list, int]] = {}
        self._eval_inputs: dict[tuple[str, str], list[list[int]]] = {}  # token ids per example
        self._nshot_cache: dict[tuple, dict[str, np.ndarray]] = {}  # nested n-shot sets, largest n
        self._largest_n: dict[tuple, int] = {}
        self._replay_cache: dict[tuple, dict[str, np.ndarray]] = {}  # replayed source rows per source run
        # pack_cells != 1: few-shot cells train and evaluate K at a time (jaxlt.grid.packing).
        self.packer = None
        if settings.pack_cells != 1:
            from jaxlt.grid.packing import FewshotPacker

            self.packer = FewshotPacker(self, settings.pack_cells)

    # ---- data
    def available_languages(self, task: str):
        return self.catalog.available_languages(task)

    def has_checkpoint(self, checkpoint_dir: str) -> bool:
        return self.catalog.has_checkpoint(checkpoint_dir)

    def _source_size(self, task: str, source: str) -> int | None:
        from jaxlt.data.examples import load_examples

        size = self.settings.data.source_size
        if size == -1:
            return len(load_examples(task, source, "train", self.data_dir))
        return size or None  # None: the dataset's declared (paper) size

    def _mixture(self, cell: Cell) -> str:
        """The data engineer's seqio mixture for a cell (zero-shot = the source set alone)."""
        from jaxlt.data import mixtures

        return mixtures.register_mixture(
            cell.task, cell.source, cell.target, cell.n, cell.seed, cell.strategy,
            cell.sampling or "random", source_size=self._source_size(cell.task, cell.source),
            data_dir=self.data_dir, vocabulary=self.spm_path)

    def _batches(self, mixture: str, seed: int, task: str):
        """Endless shuffled batches of a seqio mixture of `task`, as EncDecFeatureConverter lays them out."""
        import seqio

        from jaxlt.data.batching import numpy_iterator

        lengths = self.settings.lengths_for(task)
        ds = seqio.get_mixture_or_task(mixture).get_dataset(
            lengths, split="train", shuffle=True, seed=seed, num_epochs=None, use_cached=False)
        ds = seqio.EncDecFeatureConverter(pack=False)(ds, lengths)
        return numpy_iterator(ds.batch(self.settings.batch_size, drop_remainder=True))

    def prepare(self, cells: list[Cell]) -> None:
        """Registers every mixture and reads every evaluation set the cells need, so a missing
        file or a too-small n-shot pool fails now, before any training."""
        from jaxlt.data.examples import load_examples

        self.settings.check_tasks({c.task for c in cells})
        for task, target in sorted({(c.task, c.target) for c in cells}):
            load_examples(task, target, self.settings.eval_split_for(task), self.data_dir)
        for cell in cells:
            self._mixture(cell)
            if not cell.zero_shot:
                key = (cell.task, cell.target, cell.seed, cell.sampling)
                self._largest_n[key] = max(self._largest_n.get(key, 0), cell.n)
        if self.packer is not None:
            self.packer.prepare(cells)

    # ---- training
    @staticmethod
    def _process_rows(batches):
        """Multi-host: every process builds the same global batch and feeds its own rows
        (Trainer.device_batch takes batch_size / process_count rows per process)."""
        import jax

        n, i = jax.process_count(), jax.process_index()
        if n == 1:
            yield from batches
            return
        for batch in batches:
            local = len(next(iter(batch.values()))) // n
            yield {k: v[i * local:(i + 1) * local] for k, v in batch.items()}

    def _train(self, params, batches, steps: int, seed: int, checkpointer=None, trainer=None, schedule_step: int = 0):
        trainer = trainer or self.trainer
        compile_s = 0.0 if trainer.compile_seconds is not None else trainer.compile()
        t0 = time.perf_counter()
        state = trainer.init_state(params, schedule_step)  # device-side copy: resets a run without reloading
        state, _ = trainer.train(state, self._process_rows(batches), steps, seed=seed, checkpointer=checkpointer,
                                      progress=self.progress)
        train_s = time.perf_counter() - t0
        return state, Timings(steps=steps, wall_seconds=compile_s + train_s, compile_seconds=compile_s,
                              train_seconds=train_s)

    def trainer_for(self, task: str, learning_rate: float | None = None):
        """The Trainer at `task`'s lengths, optionally with another peak learning rate (a diverged
        source run's retry, a few-shot rate); each one compiles its train step once, when first used."""
        if learning_rate == self.settings.optimizer.learning_rate:
            learning_rate = None
        lengths = self.settings.lengths_for(task)
        key = (lengths["inputs"], lengths["targets"], learning_rate)
        if key not in self._trainers:
            import dataclasses

            optimizer = dataclasses.replace(self.settings.optimizer, learning_rate=learning_rate or
                                            self.settings.optimizer.learning_rate).make()
            self._trainers[key] = self.trainer.with_optimizer(optimizer, feature_lengths=lengths)
        return self._trainers[key]

    def train_source(self, run: SourceRun, checkpoint_dir: str, learning_rate: float | None = None):
        """`learning_rate`: instead of the configured one (the grid runner's retry of a diverged run)."""
        from jaxlt.train.checkpointing import Checkpointer

        t0 = time.perf_counter()
        batches = self._batches(self._mixture(Cell(run.task, run.source, run.seed, run.source, 0, "zero_shot", "")),
                                run.seed, run.task)
        with Checkpointer(checkpoint_dir, self.config, self.spm_path, keep_last=1, keep_best=0,
                          async_save=False) as ckpt:
            state, timings = self._train(self.pretrained, batches, self.settings.source_steps_for(run.task), run.seed, ckpt,
                                         trainer=self.trainer_for(run.task, learning_rate))
        del batches  # the endless pipeline goes now, inside the timing (see numpy_iterator)
        timings.wall_seconds = time.perf_counter() - t0
        return state.params, timings

    def load_source(self, run: SourceRun, checkpoint_dir: str):
        from jaxlt.train.checkpointing import load_inference_params

        if not self.has_checkpoint(checkpoint_dir):
            raise FileNotFoundError(f"source checkpoint for {run.key} not found in {checkpoint_dir}")
        config, params = load_inference_params(checkpoint_dir)
        if config.to_hf_dict() != self.config.to_hf_dict():
            raise ValueError(f"source checkpoint {checkpoint_dir} has a different model config than "
                             f"{self.settings.pretrained}")
        return self.trainer.place_params(params)

    def _nshot_arrays(self, cell: Cell) -> dict[str, np.ndarray]:
        """The cell's n-shot set, feature-converted, as numpy rows.

        n-shot sets are nested (the n=10 set is the first 10 of the n=50 set, see
        `jaxlt.data.sampling`), so the largest set of (task, target, seed, sampling) in this
        worker's cells goes through the seqio pipeline once and each n takes its prefix:
        building a tf.data pipeline costs more than a few-shot run of a tiny model.
        """
        import seqio

        from jaxlt.data import mixtures

        key = (cell.task, cell.target, cell.seed, cell.sampling)
        cached = self._nshot_cache.get(key)
        if cached is None or len(next(iter(cached.values()))) < cell.n:
            n_max = max(cell.n, self._largest_n.get(key, 0))
            name = mixtures.register_mixture(cell.task, cell.source, cell.target, n_max, cell.seed,
                                             "sequential", cell.sampling, data_dir=self.data_dir,
                                             vocabulary=self.spm_path)
            lengths = self.settings.lengths_for(cell.task)
            ds = seqio.get_mixture_or_task(name).get_dataset(lengths, split="train", shuffle=False,
                                                              num_epochs=1, use_cached=False)
            rows = list(seqio.EncDecFeatureConverter(pack=False)(ds, lengths).as_numpy_iterator())
            if len(rows) != n_max:
                raise RuntimeError(f"{name}: expected {n_max} examples, seqio gave {len(rows)}")
            cached = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
            self._nshot_cache[key] = cached
        return {k: v[:cell.n] for k, v in cached.items()}

    def _array_batches(self, arrays: dict[str, np.ndarray], seed: int, rows: int | None = None):
        """Endless batches of `rows` (default: the batch size): a fresh seeded permutation of the
        rows each epoch (shuffle + repeat)."""
        rng = np.random.default_rng(seed)
        n, bs = len(next(iter(arrays.values()))), rows or self.settings.batch_size
        order = np.empty(0, np.int64)
        while True:
            while len(order) < bs:
                order = np.concatenate([order, rng.permutation(n)])
            idx, order = order[:bs], order[bs:]
            yield {k: v[idx] for k, v in arrays.items()}

    def use_source_models(self, provider, available=None) -> None:
        """`provider(source_run)` -> its source model: lets a pack of few-shot cells span source runs;
        `available(cell)`: whether a pending cell may still be packed (not finished or leased elsewhere)."""
        if self.packer is not None:
            self.packer.use_source_models(provider, available)

    def _replay_arrays(self, cell: Cell) -> dict[str, np.ndarray]:
        """The source examples replayed in a sequential few-shot run: the first rows of the source
        run's own shuffled stream (the same for every cell of a source run, so its cells differ
        only in their target examples). One pipeline per source run and process, cached."""
        steps, rows = self.settings.fewshot_steps_for(cell.task), self.settings.replay_rows
        key = (cell.task, cell.source, cell.seed)
        cached = self._replay_cache.get(key)
        if cached is None or len(next(iter(cached.values()))) < steps * rows:
            stream = self._batches(self._mixture(Cell(cell.task, cell.source, cell.seed, cell.source, 0,
                                                      "zero_shot", "")), cell.seed, cell.task)
            batches = [next(stream) for _ in range(-(-steps * rows // self.settings.batch_size))]
            cached = {k: np.concatenate([b[k] for b in batches])[:steps * rows] for k in batches[0]}
            self._replay_cache[key] = cached
        return cached

    def _replay_batches(self, cell: Cell):
        """Sequential few-shot batches with `replay_rows` source examples first, then the target's."""
        rows, steps = self.settings.replay_rows, self.settings.fewshot_steps_for(cell.task)
        source = self._replay_arrays(cell)
        target = self._array_batches(self._nshot_arrays(cell), cell.seed, self.settings.batch_size - rows)
        for step, batch in enumerate(target):
            i = (step % steps) * rows
            yield {k: np.concatenate([source[k][i:i + rows], batch[k]]) for k in batch}

    def fewshot_run(self, cell: Cell, source_model):
        """A few-shot cell's (start parameters, endless global host batches, steps)."""
        if cell.strategy == "sequential":  # continue from the source model on the n-shot set
            if self.settings.replay_rows:  # (with source examples replayed in every batch)
                batches = self._replay_batches(cell)
            else:
                batches = self._array_batches(self._nshot_arrays(cell), cell.seed)
            return source_model, batches, self.settings.fewshot_steps_for(cell.task)
        # joint: source + n target examples from the pre-trained model, for the source budget
        return (self.pretrained, self._batches(self._mixture(cell), cell.seed, cell.task),
                self.settings.source_steps_for(cell.task))

    def train_fewshot(self, cell: Cell, source_model):
        if self.packer is not None:
            return self.packer.train_fewshot(cell, source_model)
        t0 = time.perf_counter()
        start, batches, steps = self.fewshot_run(cell, source_model)
        trainer = self.trainer_for(cell.task, self.settings.learning_rate_for(cell))
        state, timings = self._train(start, batches, steps, cell.seed, trainer=trainer,
                                     schedule_step=self.settings.schedule_start(cell))
        timings.wall_seconds = time.perf_counter() - t0
        return state.params, timings

    # ---- evaluation
    def eval_set(self, task: str, target: str):
        """Inputs tokenised (seqio task pipeline), padded to whole batches; references; count. Cached."""
        key = (task, target)
        if key not in self._eval_cache:
            import seqio

            from jaxlt.data.datasets import get_dataset
            from jaxlt.data.examples import load_examples
            from jaxlt.data.tasks import register_task

            split = self.settings.eval_split_for(task)
            examples = list(load_examples(task, target, split, self.data_dir))
            if self.settings.evaluation.max_examples:
                examples = examples[:self.settings.evaluation.max_examples]
            ds = seqio.get_mixture_or_task(register_task(task, target, data_dir=self.data_dir, vocabulary=self.spm_path)).get_dataset(
                self.settings.lengths_for(task), split=split, shuffle=False, num_epochs=1, use_cached=False)
            inputs = [ex["inputs"] for _, ex in zip(range(len(examples)), ds.as_numpy_iterator())]
            if len(inputs) != len(examples):
                raise RuntimeError(f"{task}.{target} {split}: seqio gave {len(inputs)} "
                                   f"examples, the data has {len(examples)}")
            bs = self.settings.evaluation.batch_size
            rows = -(-len(inputs) // bs) * bs
            array = np.zeros((rows, self.settings.lengths_for(task)["inputs"]), np.int32)
            for i, ids in enumerate(inputs):
                array[i, :len(ids)] = ids
            spec = get_dataset(task)
            references = [spec.reference(ex) for ex in examples]
            self._eval_cache[key] = (array, references, len(inputs))
            self._eval_inputs[key] = [[int(t) for t in ids] for ids in inputs]
        return self._eval_cache[key]

    def decode_texts(self, tokens: np.ndarray) -> list[str]:
        eos = self.config.eos_token_id
        out = []
        for row in tokens:
            ids = [int(t) for t in row]
            ids = ids[:ids.index(eos)] if eos in ids else ids
            out.append(self.vocabulary.decode([t for t in ids if t != 0]))
        return out

    def evaluate(self, model, task: str, target: str):
        if self.packer is not None and self.packer.handles(model):  # evaluated with its pack
            return self.packer.evaluate(model, task, target)
        from jaxlt.train.batched import predict_ids

        t0 = time.perf_counter()
        self.eval_set(task, target)
        inputs = self._eval_inputs[(task, target)]
        bs, decode_length = self.settings.evaluation.batch_size, self.settings.decode_length_for(task)
        # The shared prediction path, one bucket (the task's input length): one compiled decode per task.
        bucket = (self.settings.lengths_for(task)["inputs"],)
        compiled = self.trainer.num_compiled_inference_functions
        t1 = time.perf_counter()
        generated, _ = predict_ids(self.trainer, model, inputs[:bs], decode_length, batch_size=bs, buckets=bucket)
        # the first call of a new shape compiles (and runs one batch)
        compile_s = time.perf_counter() - t1 if self.trainer.num_compiled_inference_functions > compiled else 0.0
        rest, _ = predict_ids(self.trainer, model, inputs[bs:], decode_length, batch_size=bs, buckets=bucket)
        texts = [self.vocabulary.decode([t for t in ids if t != 0]) for ids in generated + rest]
        scores, details = self.score_texts(task, target, texts)
        dt = time.perf_counter() - t0
        return scores, Timings(wall_seconds=dt, compile_seconds=compile_s, eval_seconds=dt), details

    def score_predictions(self, task: str, target: str, tokens: np.ndarray):
        """Metrics and record details of decoded token rows (the eval set's rows, padding included)."""
        _, _, count = self.eval_set(task, target)
        return self.score_texts(task, target, self.decode_texts(tokens[:count]))

    def score_texts(self, task: str, target: str, texts: list[str]):
        """Metrics and record details of the decoded texts of the eval set's examples."""
        from jaxlt.data import metrics
        from jaxlt.data.tasks import postprocessor

        _, references, count = self.eval_set(task, target)
        if len(texts) != count:
            raise RuntimeError(f"{task}.{target}: {len(texts)} predictions for {count} examples")
        post = postprocessor(task)
        predictions = [post(p) for p in texts]
        scores = metrics.score(task, references, predictions)
        # The digest tells runs apart even when a tiny model's metric is flat (0 or constant).
        digest = hashlib.sha256("\x00".join(predictions).encode()).hexdigest()[:16]
        return scores, {"examples": count, "split": self.settings.eval_split_for(task), "predictions_sha256": digest}
