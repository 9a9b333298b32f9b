"""Model-derived language features (paper, sections 2.1-2.2), from the pre-trained model.

Per (task, language), from the task's training text:
* EMB centroid: mean over a sample of sentences of the mean-pooled (non-pad) final
  encoder hidden states; EMB(S, T) = cosine of the two centroids.
* LM_L: mean over span-corrupted sentences of the log-likelihood of the targets
  (natural log, summed over the target tokens), using the span-corruption task
  `span_corruption.{task}.{lang}` of `jaxlt.data.span_corruption` (mT5's procedure).
* LM_EM: the fraction (0-1) of those sentences whose greedy-decoded span
  prediction equals the target exactly.

Output directory (the language-features contract of DESIGN.md):
    language_features.csv/.parquet   model, task, language, feature (LM_L, LM_EM), value, sentences
    centroids.npz                    "model/task/language" -> centroid vector (EMB)
    emb_pairs.csv                    model, task, source, target, feature=EMB, value (derived)
    model_features.json              what was computed, counts of sentences used and excluded
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import os
import time

import numpy as np

from jaxlt import atomic

log = logging.getLogger(__name__)
LANGUAGE_FEATURES = ("LM_L", "LM_EM")


@dataclasses.dataclass(frozen=True)
class FeatureSettings:
    num_sentences: int = 256  # per (task, language), for each feature
    batch_size: int = 32
    input_length: int = 128  # longer span-corrupted examples are excluded (counted), not truncated
    target_length: int = 64
    seed: int = 0


def sample_texts(task: str, lang: str, n: int, seed: int) -> tuple[list[str], int]:
    """A seeded sample of n training texts (fewer if the split is smaller); also the number of
    empty texts skipped."""
    from jaxlt.data import sources
    from jaxlt.data.span_corruption import record_text

    texts = [record_text(task, r) for r in sources.load_records(task, lang, "train")]
    empty = sum(not t.strip() for t in texts)
    texts = [t for t in texts if t.strip()]
    order = np.random.default_rng(seed).permutation(len(texts))[:n]
    return [texts[i] for i in order], empty


def exact_match_rate(predictions: np.ndarray, targets: np.ndarray, eos_id: int = 1) -> float:
    """Fraction of rows whose prediction equals the target up to and including its EOS."""
    hits = []
    for pred, tgt in zip(predictions.tolist(), targets.tolist()):
        tgt = tgt[:tgt.index(eos_id) + 1] if eos_id in tgt else [t for t in tgt if t]
        hits.append(pred[:len(tgt)] == tgt)
    return float(np.mean(hits)) if hits else float("nan")


def _pad(rows: list, length: int) -> np.ndarray:
    out = np.zeros((len(rows), length), np.int32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


class ModelFeatures:
    """Computes features for one pre-trained model; compiled functions are reused across languages."""

    def __init__(self, config, params, spm_path: str, settings: FeatureSettings = FeatureSettings()):
        import jax
        from flax import linen as nn

        from jaxlt.data import tasks
        from jaxlt.model.network import Transformer
        from jaxlt.partitioning import PartitioningConfig
        from jaxlt.train.engine import Trainer

        self.config, self.settings = config, settings
        tasks.set_vocabulary(spm_path)
        self.vocabulary = tasks.VOCABULARY.delegate
        hardware = PartitioningConfig()
        # The Trainer gives sharded, compiled-once predict/score; it never trains here.
        self.trainer = Trainer(config, batch_size=settings.batch_size,
                               feature_lengths={"inputs": settings.input_length, "targets": settings.target_length},
                               mesh=hardware.make_mesh(), rules=hardware.rules())
        self.params = self.trainer.place_params(params)
        model, trainer = Transformer(config), self.trainer

        def pooled(params, tokens):
            hidden = model.apply({"params": params}, tokens, method=Transformer.encode).astype(jax.numpy.float32)
            mask = (tokens != config.pad_token_id).astype(jax.numpy.float32)[..., None]
            return (hidden * mask).sum(1) / jax.numpy.maximum(mask.sum(1), 1.0)

        self._pooled = jax.jit(pooled, in_shardings=(trainer.param_shardings, trainer.batch_sharding))
        self._rules = trainer.rules
        self._nn = nn

    def _batches(self, array: np.ndarray):
        bs = self.settings.batch_size
        for start in range(0, len(array), bs):
            chunk = array[start:start + bs]
            n = len(chunk)
            if n < bs:  # one compiled shape: pad the last batch with empty rows
                chunk = np.concatenate([chunk, np.zeros((bs - n,) + chunk.shape[1:], chunk.dtype)])
            yield chunk, n

    def centroid(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Mean of mean-pooled encoder states; texts longer than input_length are truncated
        (counted and returned: an embedding of the first input_length tokens is still the language)."""
        import jax

        eos, L = self.config.eos_token_id, self.settings.input_length
        ids = [self.vocabulary.encode(t) for t in texts]
        truncated = sum(len(x) > L - 1 for x in ids)
        tokens = _pad([x[:L - 1] + [eos] for x in ids], L)
        sums, count = None, 0
        with jax.set_mesh(self.trainer.mesh), self._nn.logical_axis_rules(self._rules):
            for batch, n in self._batches(tokens):
                emb = np.asarray(jax.device_get(self._pooled(self.params, batch)))[:n]
                sums = emb.sum(0) if sums is None else sums + emb.sum(0)
                count += n
        return sums / count, truncated

    def span_examples(self, task: str, lang: str) -> tuple[list, list, int]:
        """The first num_sentences span-corrupted training examples that fit the lengths; excluded count."""
        import seqio

        from jaxlt.data.span_corruption import register_span_corruption_task

        name = register_span_corruption_task(task, lang)
        ds = seqio.get_mixture_or_task(name).get_dataset(None, split="train", shuffle=True,
                                                          seed=self.settings.seed, num_epochs=1, use_cached=False)
        inputs, targets, excluded = [], [], 0
        for ex in ds.as_numpy_iterator():
            if len(ex["inputs"]) > self.settings.input_length or len(ex["targets"]) > self.settings.target_length:
                excluded += 1
                continue
            inputs.append(ex["inputs"].tolist())
            targets.append(ex["targets"].tolist())
            if len(inputs) == self.settings.num_sentences:
                break
        return inputs, targets, excluded

    def lm_features(self, task: str, lang: str) -> dict:
        inputs, targets, excluded = self.span_examples(task, lang)
        if not inputs:
            raise ValueError(f"{task}.{lang}: no span-corrupted example fits input_length "
                             f"{self.settings.input_length} / target_length {self.settings.target_length}")
        enc, dec = _pad(inputs, self.settings.input_length), _pad(targets, self.settings.target_length)
        ll, em_hits = [], []
        for (e, n), (d, _) in zip(self._batches(enc), self._batches(dec)):
            ll.append(self.trainer.score(self.params, e, d)[:n])
            pred = self.trainer.predict(self.params, e, self.settings.target_length)[:n]
            em_hits.append(exact_match_rate(pred, d[:n], self.config.eos_token_id) * n)
        return {"LM_L": float(np.mean(np.concatenate(ll))), "LM_EM": float(np.sum(em_hits) / len(inputs)),
                "sentences": len(inputs), "excluded_too_long": excluded}




def compute(model_name: str, checkpoint: str, tasks: list[str], languages: list[str], out_dir: str,
            settings: FeatureSettings = FeatureSettings(), features=("EMB", "LM_L", "LM_EM"),
            progress: bool = True, init_seed: int = 0):
    """Computes the features and writes the output directory (module docstring); returns the table."""
    import pandas as pd
    from tqdm.auto import tqdm

    from jaxlt.data import sources
    from jaxlt.grid.executor import load_model
    from jaxlt.grid.spec import normalize_language

    unknown = sorted(set(features) - {"EMB", *LANGUAGE_FEATURES})
    if unknown:
        raise ValueError(f"unknown model feature(s) {unknown}; known: EMB, LM_L, LM_EM")
    if all(sources.get_spec(t).iso_languages for t in tasks):  # lab codes are taken as written
        languages = [normalize_language(x) for x in languages]
    for task in tasks:  # every (task, language) must exist before the model is loaded
        missing = [lang for lang in languages if lang not in sources.get_spec(task).languages]
        if missing:
            raise ValueError(f"task {task!r} has no language(s) {missing}; "
                             f"available: {', '.join(sources.get_spec(task).languages)}")
    config, params, spm = load_model(checkpoint, init_seed)
    mf = ModelFeatures(config, params, spm, settings)
    rows, centroids, counts = [], {}, {}
    t0 = time.perf_counter()
    for task, lang in tqdm(list(itertools.product(tasks, languages)), desc="model features", disable=not progress):
        key = f"{model_name}/{task}/{lang}"
        counts[key] = {}
        if "EMB" in features:
            texts, empty = sample_texts(task, lang, settings.num_sentences, settings.seed)
            centroids[key], truncated = mf.centroid(texts)
            counts[key].update(emb_sentences=len(texts), emb_truncated=truncated, empty_texts_skipped=empty)
            if truncated:
                log.info("%s: %d of %d sentences truncated to %d tokens for EMB", key, truncated, len(texts),
                         settings.input_length)
        if {"LM_L", "LM_EM"} & set(features):
            lm = mf.lm_features(task, lang)
            counts[key].update(lm_sentences=lm["sentences"], lm_excluded_too_long=lm["excluded_too_long"])
            if lm["excluded_too_long"]:
                log.warning("%s: %d span-corrupted examples longer than the lengths were excluded",
                            key, lm["excluded_too_long"])
            for f in LANGUAGE_FEATURES:
                if f in features:
                    rows.append({"model": model_name, "task": task, "language": lang, "feature": f,
                                 "value": lm[f], "sentences": lm["sentences"]})
    seconds = time.perf_counter() - t0
    table = pd.DataFrame(rows, columns=["model", "task", "language", "feature", "value", "sentences"])
    os.makedirs(out_dir, exist_ok=True)
    atomic.write_with(os.path.join(out_dir, "language_features.csv"), lambda p: table.to_csv(p, index=False))
    atomic.write_with(os.path.join(out_dir, "language_features.parquet"), lambda p: table.to_parquet(p, index=False))
    if centroids:
        atomic.write_with(os.path.join(out_dir, "centroids.npz"), lambda p: _save_npz(p, centroids))
        pairs = emb_pairs(centroids)
        atomic.write_with(os.path.join(out_dir, "emb_pairs.csv"), lambda p: pairs.to_csv(p, index=False))
    meta = {"model": model_name, "checkpoint": checkpoint, "tasks": tasks, "languages": languages,
            "features": list(features), "settings": dataclasses.asdict(settings), "counts": counts,
            "seconds": seconds}
    atomic.write_with(os.path.join(out_dir, "model_features.json"),
            lambda p: open(p, "w").write(json.dumps(meta, indent=1)))
    return table, centroids, seconds


def _save_npz(path: str, arrays: dict) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def emb_pairs(centroids: dict):
    """EMB(S, T) = cos(centroid_S, centroid_T) for every ordered pair of languages of a (model, task)."""
    import pandas as pd

    rows = []
    groups = sorted({tuple(k.split("/")[:2]) for k in centroids})
    for model, task in groups:
        langs = sorted(k.split("/")[2] for k in centroids if k.startswith(f"{model}/{task}/"))
        for s, t in itertools.permutations(langs, 2):
            u, v = centroids[f"{model}/{task}/{s}"], centroids[f"{model}/{task}/{t}"]
            rows.append({"model": model, "task": task, "source": s, "target": t, "feature": "EMB",
                         "value": float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))})
    return pd.DataFrame(rows, columns=["model", "task", "source", "target", "feature", "value"])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jaxlt features model", description="EMB, LM_L and LM_EM from a pre-trained model (accelerator stage).",
        epilog="example:\n  jaxlt features model --checkpoint google/mt5-base --model mt5-base "
               "--tasks xnli,panx --languages en,de,sw --out features/model\n"
               "  jaxlt features model --checkpoint init:mt5_tiny --data_dir jaxlt/resources/tiny_data "
               "--tasks xnli --languages en,de,ru,sw --out /tmp/mf",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="HF directory or hub id, jaxlt checkpoint, or init:CONFIG_NAME (random init, tests)")
    p.add_argument("--model", help="model name in the table (default: the checkpoint's base name)")
    p.add_argument("--tasks", required=True, help="comma-separated datasets, e.g. xnli,panx,tydiqa")
    p.add_argument("--languages", required=True, help="comma-separated language codes")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--features", default="EMB,LM_L,LM_EM", help="subset of EMB,LM_L,LM_EM")
    p.add_argument("--data_dir", help="local data directory (default: JAXLT_DATA_DIR or the HF hub)")
    for f in dataclasses.fields(FeatureSettings):
        p.add_argument(f"--{f.name}", type=int, default=f.default, help=f"(default {f.default})")
    p.add_argument("--gin_file", action="append", default=[], help="e.g. hardware/gpu_8.gin for the mesh")
    p.add_argument("--no_progress", action="store_true")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.ERROR)
    import jaxlt.data.tf_cpu  # noqa: F401  (hides accelerators from TensorFlow before seqio / JAX)
    from jaxlt.data import sources
    from jaxlt.grid.spec import GridSpecError

    if args.gin_file:
        import jaxlt.partitioning  # noqa: F401  (its configurables)
        from jaxlt.gin_flags import parse_gin

        parse_gin(args.gin_file, [])
    if args.data_dir:
        sources.set_data_dir(args.data_dir)
    settings = FeatureSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(FeatureSettings)})
    model = args.model or os.path.basename(os.path.normpath(args.checkpoint.replace("init:", "")))
    split = lambda s: [x for x in s.replace(" ", "").split(",") if x]  # noqa: E731
    try:
        table, centroids, seconds = compute(model, args.checkpoint, split(args.tasks), split(args.languages),
                                            args.out, settings, tuple(split(args.features)),
                                            progress=not args.no_progress)
    except (ValueError, KeyError, GridSpecError) as e:
        print(f"jaxlt features model: error: {e}", file=os.sys.stderr)
        return 2
    print(f"wrote {len(table)} language-feature rows and {len(centroids)} centroids to {args.out} "
          f"in {seconds:.1f}s")
    return 0
