"""The Trainer: one jitted, explicitly sharded train step, compiled once and reused across runs.

The grid calls `init_state` + `train` thousands of times with the same shapes;
the step is compiled ahead of time on the first call (`jax.jit(...).lower().compile()`)
and the compiled executable is called directly afterwards, so a batch of the
wrong shape is an error instead of a silent recompilation.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from jax.sharding import NamedSharding, PartitionSpec

from jaxlt import console, partitioning
from jaxlt.errors import DivergenceError
from jaxlt.train.optimizer import make_optimizer, start_schedule_at
from jaxlt.train.state import TrainState

log = logging.getLogger(__name__)

ENCODER_FEATURES = ("encoder_input_tokens", "encoder_segment_ids", "encoder_positions")
DECODER_FEATURES = ("decoder_input_tokens", "decoder_target_tokens", "decoder_loss_weights",
                    "decoder_segment_ids", "decoder_positions")
REQUIRED_FEATURES = ("encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens",
                     "decoder_loss_weights")
# "Loss normalisation as for the public mT5 checkpoints": t5x's fine-tuning configs for
# checkpoints pre-trained with Mesh TensorFlow divide the summed loss by a constant,
# pre-training batch size x target length: 1024 x 229 for mT5 (2048 x 114 for T5 / T5.1.1).
MT5_LOSS_NORMALIZING_FACTOR = 1024.0 * 229
T5_LOSS_NORMALIZING_FACTOR = 2048.0 * 114


class NonFiniteLossError(DivergenceError):
    """Training diverged: the loss, the gradient norm or the updated parameters are NaN or infinite."""


def _all_finite(tree) -> jax.Array:
    """1.0 if every floating-point leaf is finite, else 0.0 (one fused reduction on the devices)."""
    flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(flags)).astype(jnp.float32) if flags else jnp.ones((), jnp.float32)


def divergence_reason(metrics: Mapping[str, float]) -> str:
    """What is not finite in a step's metrics ("" when all is well)."""
    bad = [f"{name} is {metrics[name]}" for name in ("loss", "objective", "grad_norm")
           if name in metrics and not math.isfinite(metrics[name])]
    if metrics.get("params_finite", 1.0) != 1.0:
        bad.append("the updated parameters are not finite")
    return ", ".join(bad)


def _feature_lengths(feature_lengths: Mapping[str, int]) -> dict[str, int]:
    """Accepts task lengths ({"inputs", "targets"}) or converter lengths ({"encoder", "decoder"})."""
    lengths = dict(feature_lengths)
    enc = lengths.get("inputs", lengths.get("encoder"))
    dec = lengths.get("targets", lengths.get("decoder"))
    if enc is None or dec is None:
        raise ValueError(f"feature_lengths must give the input and target lengths as "
                         f"{{'inputs': N, 'targets': M}}; got {lengths}")
    return {"inputs": int(enc), "targets": int(dec)}


class Trainer:
    """Train / predict / score for one (model config, batch shape, mesh); see the module docstring.

    Loss: by default the plain mean token cross-entropy over the real target tokens of
    the whole (accumulated) batch, as PyTorch / transformers fine-tuning (the paper's).
    Explicit options: `z_loss` (t5x uses 1e-4) and `loss_normalizing_factor`, a constant
    that divides the summed loss instead (e.g. MT5_LOSS_NORMALIZING_FACTOR, as t5x does
    for the public mT5 checkpoints).
    With `accumulation_steps` A the batch is split into A micro-batches whose
    gradients are summed before a single optimizer update, so the update equals
    the full-batch one.
    """

    def __init__(self, model_config, *, batch_size: int, feature_lengths: Mapping[str, int],
                 optimizer: optax.GradientTransformation | None = None, mesh=None, rules=None,
                 accumulation_steps: int = 1, z_loss: float = 0.0, label_smoothing: float = 0.0,
                 loss_normalizing_factor: float | None = None, packed: bool = False,
                 compiler_options: Mapping[str, Any] | None = None):
        from jaxlt.model.network import Transformer, init_params

        self.config = model_config
        self.batch_size = int(batch_size)
        self.lengths = _feature_lengths(feature_lengths)
        self.optimizer = optimizer if optimizer is not None else make_optimizer()
        self.mesh = mesh if mesh is not None else partitioning.create_mesh((-1, 1))
        self.rules = partitioning.validate_rules(rules if rules is not None else partitioning.DATA_PARALLEL_RULES)
        partitioning.check_rules_fit_mesh(self.rules, self.mesh)
        self.accumulation_steps = int(accumulation_steps)
        self.z_loss, self.label_smoothing = float(z_loss), float(label_smoothing)
        self.loss_normalizing_factor = (None if loss_normalizing_factor is None
                                        else float(loss_normalizing_factor))
        self.packed = packed
        # e.g. {"xla_backend_optimization_level": 0}: compiles ~5x faster on CPU (tests, smoke runs).
        self.compiler_options = dict(compiler_options or {})
        self.model = Transformer(model_config)
        if self.accumulation_steps < 1 or self.batch_size % self.accumulation_steps:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by accumulation_steps "
                             f"{self.accumulation_steps}")
        self.micro_batch_size = self.batch_size // self.accumulation_steps

        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.batch_sharding = partitioning.logical_sharding(("batch", "length"), self.mesh, self.rules)
        self.data_shards = self._num_shards(self.batch_sharding, 0)
        if self.micro_batch_size % self.data_shards:
            raise ValueError(f"micro-batch size {self.micro_batch_size} (batch_size {self.batch_size} / "
                             f"accumulation_steps {self.accumulation_steps}) is not divisible by the "
                             f"{self.data_shards} batch shards of mesh {dict(self.mesh.shape)}")

        with self._context():
            boxed = jax.eval_shape(functools.partial(init_params, model_config), jax.random.key(0))
        self.param_shardings = partitioning.logical_to_shardings(boxed, self.mesh, self.rules)
        self.abstract_params = nn.meta.unbox(boxed)
        abstract_opt = jax.eval_shape(self.optimizer.init, self.abstract_params)
        table = partitioning.path_table(self.abstract_params, self.param_shardings)
        self.state_shardings = TrainState(
            step=self.replicated, params=self.param_shardings,
            opt_state=partitioning.shardings_like(abstract_opt, table, self.mesh))
        self.abstract_state = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            TrainState(step=jax.ShapeDtypeStruct((), jnp.int32), params=self.abstract_params,
                       opt_state=abstract_opt), self.state_shardings)
        self.features = REQUIRED_FEATURES + (
            ("encoder_segment_ids", "encoder_positions", "decoder_segment_ids", "decoder_positions")
            if packed else ())
        self.batch_shapes = {k: (self.batch_size, self.lengths["inputs"] if k.startswith("encoder")
                                 else self.lengths["targets"]) for k in self.features}

        self._init_fn = jax.jit(self._init_state, in_shardings=(self.param_shardings,),
                                out_shardings=self.state_shardings)
        batch_shardings = {k: self.batch_sharding for k in self.features}
        self._step_jit = jax.jit(
            self._train_step, in_shardings=(self.state_shardings, batch_shardings, self.replicated),
            out_shardings=(self.state_shardings, self.replicated), donate_argnums=(0,))
        self._step_compiled = None
        self.compile_seconds: float | None = None
        self._decode_fns: dict = {}

    def with_optimizer(self, optimizer: optax.GradientTransformation, feature_lengths=None) -> Trainer:
        """A Trainer like this one (model, shapes, mesh, loss) with another optimizer, e.g. a lower
        learning rate to retry a diverged run, and optionally other feature lengths (another task's);
        it compiles its own train step."""
        return Trainer(self.config, batch_size=self.batch_size, feature_lengths=feature_lengths or self.lengths,
                       optimizer=optimizer,
                       mesh=self.mesh, rules=self.rules, accumulation_steps=self.accumulation_steps,
                       z_loss=self.z_loss, label_smoothing=self.label_smoothing,
                       loss_normalizing_factor=self.loss_normalizing_factor, packed=self.packed,
                       compiler_options=self.compiler_options)

    # -- helpers ---------------------------------------------------------------
    def _context(self):
        stack = contextlib.ExitStack()
        stack.enter_context(jax.set_mesh(self.mesh))
        stack.enter_context(nn.logical_axis_rules(self.rules))
        return stack

    def _num_shards(self, sharding: NamedSharding, dim: int) -> int:
        spec = tuple(sharding.spec) + (None,) * 8
        axes = spec[dim]
        if axes is None:
            return 1
        return math.prod(self.mesh.shape[a] for a in ((axes,) if isinstance(axes, str) else axes))

    def param_count(self, exclude_embeddings: bool = False) -> int:
        leaves = jax.tree_util.tree_flatten_with_path(self.abstract_params)[0]
        total = 0
        for path, leaf in leaves:
            name = jax.tree_util.keystr(path)
            if exclude_embeddings and ("embedding" in name or "logits_dense" in name or "token_embedder" in name):
                continue
            total += math.prod(leaf.shape)
        return total

    # -- state -----------------------------------------------------------------
    def _init_state(self, params):
        # Copies the parameters (jit outputs are fresh buffers), so donating the
        # state in the train step never consumes the caller's params.
        params = jax.tree.map(jnp.copy, params)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=self.optimizer.init(params))

    def init_state(self, params, schedule_step: int = 0) -> TrainState:
        """A fresh TrainState (step 0, new optimizer state) with `params` placed on the mesh.

        Accepts boxed (nn.Partitioned) or plain params, numpy or jax arrays;
        calling it again with the same params resets a run without recompiling.
        `schedule_step`: the learning-rate schedule starts there (e.g. past its warmup), Adam fresh.
        """
        params = nn.meta.unbox(params)
        if isinstance(params, Mapping) and set(params) == {"params"}:
            params = params["params"]
        _check_tree(params, self.abstract_params)
        params = jax.device_put(params, self.param_shardings)
        with self._context():
            state = self._init_fn(params)
            if schedule_step:
                state = state.replace(opt_state=start_schedule_at(state.opt_state, schedule_step))
            return state

    # -- the train step ----------------------------------------------------------
    def _loss(self, params, batch, rng):
        from jaxlt.model.losses import decoder_loss

        weights = batch["decoder_loss_weights"].astype(jnp.float32)
        # Summed (unnormalised) loss; normalised once over the whole accumulated batch. The model's
        # config decides whether the vocabulary is scanned in chunks (config.logits_chunk_size).
        loss_sum, aux = decoder_loss(self.model, params, batch, rng, z_loss=self.z_loss,
                                     label_smoothing=self.label_smoothing, loss_normalizing_factor=1.0,
                                     enable_dropout=self.config.dropout_rate > 0)
        stats = {"weight_sum": jnp.sum(weights), "ce_sum": _aux_get(aux, "cross_entropy", loss_sum),
                 "z_loss_sum": _aux_get(aux, "z_loss", jnp.zeros(()))}
        return loss_sum, stats

    def _train_step(self, state: TrainState, batch: dict, base_rng):
        rng = jax.random.fold_in(base_rng, state.step)
        grad_fn = jax.value_and_grad(self._loss, has_aux=True)
        a = self.accumulation_steps
        if a == 1:
            (loss_sum, stats), grads = grad_fn(state.params, batch, rng)
        else:
            # Micro-batch i takes rows i, i + A, i + 2A, ...: every data shard holds a
            # slice of each micro-batch, so the split is a local reshape, not a reshard.
            def split(x):
                x = x.reshape((self.micro_batch_size, a) + x.shape[1:]).swapaxes(0, 1)
                return jax.lax.with_sharding_constraint(
                    x, NamedSharding(self.mesh, PartitionSpec(None, *self.batch_sharding.spec)))

            micro = jax.tree.map(split, batch)

            def body(carry, xs):
                i, mb = xs
                (l, s), g = grad_fn(state.params, mb, jax.random.fold_in(rng, i))
                acc_l, acc_s, acc_g = carry
                return (acc_l + l, jax.tree.map(jnp.add, acc_s, s), jax.tree.map(jnp.add, acc_g, g)), None

            zeros_g = jax.tree.map(jnp.zeros_like, state.params)
            zeros_s = {"weight_sum": jnp.zeros(()), "ce_sum": jnp.zeros(()), "z_loss_sum": jnp.zeros(())}
            (loss_sum, stats, grads), _ = jax.lax.scan(
                body, (jnp.zeros(()), zeros_s, zeros_g), (jnp.arange(a), micro))
        norm = (jnp.maximum(stats["weight_sum"], 1.0) if self.loss_normalizing_factor is None
                else self.loss_normalizing_factor)
        grads = jax.tree.map(lambda g: g / norm, grads)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        tokens = jnp.maximum(stats["weight_sum"], 1.0)
        # The loss is computed before the update; a finite loss can still give a NaN gradient or
        # an overflowing update, so the new parameters are checked too before anything saves them.
        metrics = {"loss": stats["ce_sum"] / tokens, "z_loss": stats["z_loss_sum"] / tokens,
                   "objective": loss_sum / norm, "target_tokens": stats["weight_sum"],
                   "grad_norm": optax.global_norm(grads), "params_finite": _all_finite(params)}
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    # The step's pure (un-jitted) pieces, for callers that transform them: jaxlt.train.packed
    # vmaps them over stacked runs, so packed and single runs share one loss and one update.
    def state_from_params(self, params) -> TrainState:
        """A fresh TrainState (step 0, new optimizer state) of unboxed params; traceable."""
        return self._init_state(params)

    def step_function(self, state: TrainState, batch: dict, base_rng):
        """One update as a pure function: (state, batch, rng key data) -> (new state, metrics)."""
        return self._train_step(state, batch, base_rng)

    def compile(self) -> float:
        """Compiles the train step ahead of time (once per Trainer); returns the seconds it took."""
        if self._step_compiled is None:
            t0 = time.perf_counter()
            abstract_batch = {k: jax.ShapeDtypeStruct(self.batch_shapes[k], jnp.int32 if k != "decoder_loss_weights"
                                                      else jnp.float32, sharding=self.batch_sharding)
                              for k in self.features}
            key = jax.ShapeDtypeStruct((2,), jnp.uint32, sharding=self.replicated)
            with self._context():
                self._step_compiled = self._step_jit.lower(self.abstract_state, abstract_batch, key).compile(
                    compiler_options=self.compiler_options or None)
            self.compile_seconds = time.perf_counter() - t0
            log.info("compiled the train step in %.1fs", self.compile_seconds)
        return self.compile_seconds

    def device_batch(self, batch: Mapping[str, np.ndarray]) -> dict:
        """Checks a host batch against the compiled shapes and places it on the mesh.

        In a multi-host run each process passes its own rows (batch_size / process_count).
        """
        missing = [k for k in self.features if k not in batch]
        if missing:
            raise KeyError(f"batch lacks feature(s) {missing}; has {sorted(batch)}"
                           + ("" if self.packed else " (set packed=True for packed batches)"))
        out = {}
        nproc = jax.process_count()
        for k in self.features:
            x = np.asarray(batch[k])
            global_shape = self.batch_shapes[k]
            local_shape = (global_shape[0] // nproc,) + global_shape[1:]
            if x.shape != local_shape:
                raise ValueError(f"batch feature {k!r} has shape {x.shape}, but this Trainer was compiled "
                                 f"for {local_shape} (batch_size {self.batch_size}, feature_lengths "
                                 f"{self.lengths}, {nproc} process(es))")
            x = x.astype(np.float32 if k == "decoder_loss_weights" else np.int32)
            out[k] = jax.make_array_from_process_local_data(self.batch_sharding, x, global_shape)
        return out

    def train_step(self, state: TrainState, batch: Mapping[str, np.ndarray], seed: int = 0):
        """One optimizer update (donates `state`); returns (new state, device metrics)."""
        self.compile()
        key = jax.device_put(jax.random.key_data(jax.random.key(seed)), self.replicated)
        return self._step_compiled(state, self.device_batch(batch), key)

    # -- the loop ----------------------------------------------------------------
    def train(self, state: TrainState, batches: Iterable[Mapping] | Callable[[int], Iterator[Mapping]],
              num_steps: int, *, seed: int, checkpointer=None, eval_every: int | None = None,
              eval_fn: Callable[[Any, int], dict] | None = None, progress: bool = True,
              checkpoint_every: int | None = None, writer=None) -> tuple[TrainState, list[dict]]:
        """Trains until `state.step == num_steps` (an absolute step, so a resumed run stops at the same place).

        `batches`: an iterable of host batches consumed from its current position,
        or a callable `data_position -> iterator` (the number of batches already
        consumed, i.e. the state's step), which is how exact resumption works.
        Every `eval_every` steps `eval_fn(params, step) -> metrics` runs; every
        `checkpoint_every` steps (default: eval_every) and at the end the state is
        saved with those metrics (the checkpointer keeps last and best).
        A NaN/inf loss or gradient norm, or non-finite updated parameters, raise
        NonFiniteLossError before anything from that step is saved (a diverged state is
        never checkpointed, so `keep_last` never deletes the last finite checkpoint).
        Returns (state, history): one dict per step, plus eval records.
        """
        from tqdm.auto import tqdm

        self.compile()
        start = int(jax.device_get(state.step))
        if num_steps < start:
            raise ValueError(f"num_steps {num_steps} is before the state's step {start}")
        iterator = iter(batches(start) if callable(batches) else batches)
        key = jax.device_put(jax.random.key_data(jax.random.key(seed)), self.replicated)
        checkpoint_every = checkpoint_every or eval_every
        tokens_per_step = self.batch_size * (self.lengths["inputs"] + self.lengths["targets"])
        history: list[dict] = []
        # A bar on a terminal; in a log file, a plain line every tenth of the run or minute instead.
        terminal = console.is_terminal()
        plain = {"every": max(1, (num_steps - start) // 10), "t": time.time()}
        bar = tqdm(total=num_steps, initial=start, desc="train", unit="step", disable=not (progress and terminal),
                   dynamic_ncols=True)
        clock = {"t": time.perf_counter()}

        def finish(step: int, device_metrics) -> None:
            # Reading a step's metrics waits for that step only; the loop reads them one step late
            # so that the host prepares the next batch while the devices compute.
            metrics = {k: float(v) for k, v in jax.device_get(device_metrics).items()}
            reason = divergence_reason(metrics)
            if reason:
                last = None
                if checkpointer is not None:
                    checkpointer.wait_until_finished()
                    last = checkpointer.latest_step()
                raise NonFiniteLossError(
                    f"training diverged at step {step}: {reason}; stopping. Last good checkpoint: "
                    + (f"step {last} in {checkpointer.directory}" if last is not None else "none")
                    + ". Try a lower learning rate, fp32 compute, or check the data.",
                    step=step, reason=reason, last_good_step=last)
            now = time.perf_counter()
            dt, clock["t"] = now - clock["t"], now
            record = {"step": step, **metrics, "seconds": dt, "tokens_per_s": tokens_per_step / dt}
            history.append(record)
            if writer is not None:
                writer.write_scalars(step, {k: v for k, v in record.items() if k != "step"})
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", tok_s=f"{record['tokens_per_s']:.0f}")
            if progress and not terminal and ((step - start) % plain["every"] == 0 or step == num_steps
                                              or time.time() - plain["t"] > 60):
                plain["t"] = time.time()
                log.info("train step %d/%d: loss %.4f, %.0f tokens/s", step, num_steps, metrics["loss"],
                         record["tokens_per_s"])

        pending = None
        try:
            for step in range(start + 1, num_steps + 1):
                try:
                    batch = next(iterator)
                except StopIteration:
                    raise RuntimeError(f"the data ran out after {step - 1 - start} batches "
                                       f"(at step {step} of {num_steps})") from None
                state, device_metrics = self._step_compiled(state, self.device_batch(batch), key)
                if pending is not None:
                    finish(*pending)
                pending = (step, device_metrics)
                do_eval = eval_fn is not None and eval_every and (step % eval_every == 0 or step == num_steps)
                do_save = checkpointer is not None and (step == num_steps or
                                                        (checkpoint_every and step % checkpoint_every == 0))
                if not (do_eval or do_save):
                    continue
                finish(*pending)  # a state is evaluated or saved only once its loss is known to be finite
                pending = None
                eval_metrics = None
                if do_eval:
                    eval_metrics = {k: float(v) for k, v in eval_fn(state.params, step).items()}
                    history.append({"step": step, "eval": eval_metrics})
                    if writer is not None:
                        writer.write_scalars(step, {f"eval/{k}": v for k, v in eval_metrics.items()})
                    line = f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in eval_metrics.items())
                    if terminal:
                        bar.write(line)
                    else:
                        log.info("eval %s", line)
                if do_save:
                    checkpointer.save(step, state, metrics=eval_metrics, data_position=step)
                clock["t"] = time.perf_counter()
            if pending is not None:
                finish(*pending)
        finally:
            bar.close()
            if writer is not None:
                writer.flush()
        if checkpointer is not None:
            checkpointer.wait_until_finished()
        return state, history

    def resume_or_init(self, params, checkpointer) -> TrainState:
        """The latest checkpointed state if `checkpointer` has one, else `init_state(params)`."""
        if checkpointer is not None and checkpointer.latest_step() is not None:
            state, meta = checkpointer.restore(abstract_state=self.abstract_state)
            log.info("resuming from step %d (data position %d)", meta["step"], meta["data_position"])
            return state
        return self.init_state(params)

    # -- inference -------------------------------------------------------------------
    def place_params(self, params):
        params = nn.meta.unbox(params)
        if isinstance(params, Mapping) and set(params) == {"params"}:
            params = params["params"]
        return jax.device_put(params, self.param_shardings)

    def _aot(self, fn, *args):
        """Compiles `fn` for these argument shapes once (an executable, so no silent recompiles)."""
        with self._context():
            return fn.lower(*args).compile(compiler_options=self.compiler_options or None)

    @property
    def num_compiled_inference_functions(self) -> int:
        return len(self._decode_fns)

    def _pad_rows(self, *arrays):
        """Pads the batch dimension with zero rows: up to batch_size (so a short last batch reuses the
        compiled function), else to a multiple of the data shards."""
        n = arrays[0].shape[0]
        m = self.batch_size if n <= self.batch_size else -(-n // self.data_shards) * self.data_shards
        m = -(-m // self.data_shards) * self.data_shards
        if m == n:
            return n, arrays
        return n, tuple(np.concatenate([a, np.zeros((m - n,) + a.shape[1:], a.dtype)]) for a in arrays)

    def predict(self, params, encoder_input_tokens, max_decode_length: int) -> np.ndarray:
        """Greedy decoding with the KV cache: int32 [B, max_decode_length] (0 after EOS)."""
        from jaxlt.model.decoding import greedy_decode

        n, (enc,) = self._pad_rows(np.asarray(encoder_input_tokens, np.int32))
        key = ("predict", enc.shape, int(max_decode_length))
        params = self.place_params(params)
        if key not in self._decode_fns:
            fn = jax.jit(functools.partial(greedy_decode, self.config, max_decode_length=int(max_decode_length)),
                         in_shardings=(self.param_shardings, self.batch_sharding), out_shardings=self.batch_sharding)
            self._decode_fns[key] = self._aot(fn, params, enc)
        with self._context():
            out = self._decode_fns[key](params, enc)
        return np.asarray(jax.device_get(out))[:n]

    def score(self, params, encoder_input_tokens, decoder_target_tokens, weights=None) -> np.ndarray:
        """Log-likelihood (natural log, summed over non-pad target tokens, or over the positions
        where `weights` [B, T] is nonzero, weighted by it): float32 [B]."""
        from jaxlt.model.decoding import sequence_log_likelihood

        arrays = [np.asarray(encoder_input_tokens, np.int32), np.asarray(decoder_target_tokens, np.int32)]
        if weights is not None:
            arrays.append(np.asarray(weights, np.float32))
        n, arrays = self._pad_rows(*arrays)
        key = ("score", *(a.shape for a in arrays))
        params = self.place_params(params)
        if key not in self._decode_fns:
            fn = jax.jit(functools.partial(sequence_log_likelihood, self.config),
                         in_shardings=(self.param_shardings,) + (self.batch_sharding,) * len(arrays),
                         out_shardings=NamedSharding(self.mesh, PartitionSpec(self.batch_sharding.spec[0])))
            self._decode_fns[key] = self._aot(fn, params, *arrays)
        with self._context():
            out = self._decode_fns[key](params, *arrays)
        return np.asarray(jax.device_get(out))[:n]

    def encode_mean(self, params, encoder_input_tokens) -> np.ndarray:
        """Mean over the non-pad positions of the final encoder hidden states: float32 [B, d_model]."""
        n, (enc,) = self._pad_rows(np.asarray(encoder_input_tokens, np.int32))
        key = ("encode_mean", enc.shape)
        params = self.place_params(params)
        if key not in self._decode_fns:
            model, pad = self.model, self.config.pad_token_id

            def pooled(params, tokens):
                hidden = model.apply({"params": params}, tokens, method=type(model).encode).astype(jnp.float32)
                mask = (tokens != pad).astype(jnp.float32)[..., None]
                return (hidden * mask).sum(1) / jnp.maximum(mask.sum(1), 1.0)

            fn = jax.jit(pooled, in_shardings=(self.param_shardings, self.batch_sharding),
                         out_shardings=NamedSharding(self.mesh, PartitionSpec(self.batch_sharding.spec[0])))
            self._decode_fns[key] = self._aot(fn, params, enc)
        with self._context():
            out = self._decode_fns[key](params, enc)
        return np.asarray(jax.device_get(out))[:n]


def _aux_get(aux, name, default):
    if isinstance(aux, Mapping) and name in aux:
        return aux[name]
    return default


def _check_tree(params, abstract) -> None:
    """Names the first parameter whose path or shape differs from the model's."""
    got = {jax.tree_util.keystr(p): tuple(np.shape(x)) for p, x in jax.tree_util.tree_flatten_with_path(params)[0]}
    want = {jax.tree_util.keystr(p): tuple(x.shape) for p, x in jax.tree_util.tree_flatten_with_path(abstract)[0]}
    missing, unexpected = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or unexpected:
        raise ValueError(f"params do not match the model config: missing {missing[:5]}"
                         f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                         f"{'...' if len(unexpected) > 5 else ''}")
    for k, shape in want.items():
        if got[k] != shape:
            raise ValueError(f"parameter {k} has shape {got[k]}, the model config expects {shape}")
