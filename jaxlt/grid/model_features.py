"""Model-derived language features (paper, sections 2.1-2.2), from the pre-trained model.

Per (task, language), from the task's training text:
* EMB centroid: mean over a sample of sentences of the mean-pooled (non-pad) final
  encoder hidden states; EMB(S, T) = cosine of the two centroids.
* LM_L and LM_EM on span-corrupted text as mT5 pre-training makes it
  (`jaxlt.data.span_corruption.corrupted_examples`): the language's training texts, in a
  seeded order, concatenated and cut into chunks of the pre-training length (input_length
  1024 -> 1137 raw tokens -> 229 target tokens), each chunk corrupted (noise density 0.15,
  mean span 3, sentinels counting down from the last vocabulary id). The short last chunk
  is dropped when there are full ones, so every scored chunk masks the same number of tokens.
* LM_L (the paper's formula): mean over chunks of the log-likelihood (natural log) of the
  masked tokens only, summed over them (sentinels and EOS excluded), teacher-forced.
* LM_EM: per-span exact match (0-1): the greedy-decoded targets are split at the sentinels;
  a span counts when the tokens after its sentinel equal the masked tokens exactly; the rate
  is over all masked spans of the chunks. (The paper's formula sums these indicators over
  spans and divides by the number of sequences, which for multi-span chunks is not a rate;
  with one span per sentence the two agree.)

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
    num_sentences: int = 256  # per (task, language): EMB sentences; LM_L / LM_EM span-corrupted chunks
    batch_size: int = 32
    # mT5's pre-training input length: a chunk of random_spans_helper(input_length) raw tokens
    # corrupts to exactly input_length input tokens (1024 -> 1137 raw, 229 target tokens).
    # Also the EMB truncation length.
    input_length: int = 1024
    target_length: int = 229  # at least the corrupted chunk's target length
    seed: int = 0

    def __post_init__(self):
        from jaxlt.data.span_corruption import random_spans_helper

        need = random_spans_helper(self.input_length)[1]
        if self.target_length < need:
            raise ValueError(f"target_length {self.target_length} is shorter than the {need} target tokens of a "
                             f"span-corrupted chunk at input_length {self.input_length}")

    @property
    def chunk_tokens(self) -> int:
        from jaxlt.data.span_corruption import random_spans_helper

        return random_spans_helper(self.input_length)[0]


def training_texts(task: str, lang: str, data_dir: str | None = None) -> tuple[list[str], int]:
    """The non-empty texts of the language's training split (`data_dir`: None = the hub or the
    dataset's own directory) and the number of empty ones skipped."""
    from jaxlt.data import sources
    from jaxlt.data.span_corruption import record_text

    texts = [record_text(task, r) for r in sources.load_records(task, lang, "train", data_dir)]
    kept = [t for t in texts if t.strip()]
    return kept, len(texts) - len(kept)


def sample_texts(task: str, lang: str, n: int, seed: int, data_dir: str | None = None) -> tuple[list[str], int]:
    """A seeded sample of n training texts (fewer if the split is smaller); also the number of
    empty texts skipped."""
    texts, empty = training_texts(task, lang, data_dir)
    order = np.random.default_rng(seed).permutation(len(texts))[:n]
    return [texts[i] for i in order], empty


def exact_match_rate(predictions: np.ndarray, targets: np.ndarray, eos_id: int = 1) -> float:
    """Fraction of rows whose prediction equals the target up to and including its EOS."""
    hits = []
    for pred, tgt in zip(predictions.tolist(), targets.tolist()):
        tgt = tgt[:tgt.index(eos_id) + 1] if eos_id in tgt else [t for t in tgt if t]
        hits.append(pred[:len(tgt)] == tgt)
    return float(np.mean(hits)) if hits else float("nan")


def _until_eos(row, eos_id: int) -> list:
    row = list(row)
    return row[:row.index(eos_id)] if eos_id in row else [t for t in row if t]


def span_matches(prediction, targets, targets_noise, eos_id: int = 1) -> tuple[int, int]:
    """(spans predicted exactly, masked spans) for one span-corrupted example.

    The gold spans are the runs of masked tokens (`targets_noise`), each after its sentinel. The
    prediction is split at the same sentinel ids (any other id is an ordinary token); a span
    counts when the tokens following its sentinel, up to the next sentinel or EOS, equal it.
    """
    gold: dict[int, list] = {}
    sentinel = None
    for token, noise in zip(np.asarray(targets).tolist(), np.asarray(targets_noise).tolist()):
        if token == eos_id and not noise:
            break
        if noise:
            gold[sentinel].append(token)
        else:
            sentinel = token
            gold[sentinel] = []
    gold = {k: v for k, v in gold.items() if v}
    sentinels = set(np.asarray(targets)[~np.asarray(targets_noise, bool)].tolist()) - {eos_id}
    predicted: dict[int, list] = {}
    current = None
    for token in _until_eos(np.asarray(prediction).tolist(), eos_id):
        if token in sentinels:
            current = token
            predicted.setdefault(current, [])
        elif current is not None:  # a sentinel predicted twice gathers both runs: not a match
            predicted[current].append(token)
    return sum(predicted.get(k) == v for k, v in gold.items()), len(gold)


class ModelFeatures:
    """Computes features for one pre-trained model through the one prediction and scoring path
    (`jaxlt.train.batched` over an inference Trainer); its compiled functions are reused across
    languages. Everything is explicit: the vocabulary file, the data directory (None: the hub or
    the dataset's own), the mesh and rules (default: data-parallel over the devices that divide
    the batch)."""

    def __init__(self, config, params, spm_path: str, settings: FeatureSettings = FeatureSettings(), *,
                 data_dir: str | None = None, mesh=None, rules=None, compiler_options=None):
        from jaxlt.data.vocabulary import get_vocabulary
        from jaxlt.train.batched import buckets_up_to, inference_trainer

        self.config, self.settings, self.data_dir = config, settings, data_dir
        self.vocabulary = get_vocabulary(spm_path)
        self.trainer = inference_trainer(config, settings.batch_size, mesh=mesh, rules=rules,
                                         compiler_options=compiler_options)
        self.params = self.trainer.place_params(params)
        self.buckets = buckets_up_to(settings.input_length)

    def centroid(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Mean of mean-pooled encoder states; texts longer than input_length are truncated
        (counted and returned: an embedding of the first input_length tokens is still the language)."""
        from jaxlt.train.batched import encode_mean_ids

        eos = self.config.eos_token_id
        ids = [self.vocabulary.encode(t) + [eos] for t in texts]
        pooled, truncated = encode_mean_ids(self.trainer, self.params, ids, buckets=self.buckets, desc="EMB")
        return pooled.mean(0), truncated

    def span_examples(self, task: str, lang: str) -> tuple[list[dict], dict]:
        """The first num_sentences full span-corrupted chunks of the language's training text (module
        docstring) and counts: texts used, chunks, partial chunks dropped."""
        from jaxlt.data.span_corruption import corrupted_examples

        st = self.settings
        chunk = st.chunk_tokens
        texts, _ = training_texts(task, lang, self.data_dir)
        order = np.random.default_rng(st.seed).permutation(len(texts))
        # Only as many texts as the chunks need (XNLI has 392k): tokens are counted on the way.
        needed, total, chosen = st.num_sentences * chunk, 0, []
        for i in order:
            chosen.append(texts[i])
            total += len(self.vocabulary.encode(texts[i]))
            if total >= needed:
                break
        examples = corrupted_examples(chosen, self.vocabulary, seed=st.seed, max_tokens=chunk, concat_batch=None)
        full = [ex for ex in examples if ex["chunk_tokens"] == chunk]
        kept = (full or examples)[:st.num_sentences]
        return kept, {"texts": len(chosen), "chunks": len(kept), "partial_chunks_dropped": len(examples) - len(full)
                      if full else 0}

    def lm_features(self, task: str, lang: str) -> dict:
        from jaxlt.train.batched import predict_ids, score_ids

        examples, counts = self.span_examples(task, lang)
        if not examples:
            raise ValueError(f"{task}.{lang}: the training split has no text to span-corrupt")
        st, eos = self.settings, self.config.eos_token_id
        inputs = [ex["inputs"].tolist() for ex in examples]
        targets = [ex["targets"].tolist() for ex in examples]
        noise = [ex["targets_noise"].astype(np.float32).tolist() for ex in examples]
        # LM_L: teacher-forced, summed over the masked tokens only (weights 1 there, 0 on sentinels/EOS)
        ll, _ = score_ids(self.trainer, self.params, inputs, targets, weights=noise, buckets=self.buckets,
                          desc="LM_L")
        predictions, _ = predict_ids(self.trainer, self.params, inputs, st.target_length, buckets=self.buckets,
                                     desc="LM_EM")
        hits, spans = 0, 0
        for p, t, m in zip(predictions, targets, noise):
            h, k = span_matches(p + [eos], t, np.asarray(m, bool), eos)  # predict_ids strips the EOS
            hits, spans = hits + h, spans + k
        return {"LM_L": float(np.mean(ll)), "LM_EM": hits / spans if spans else float("nan"),
                "sentences": len(examples), "spans": spans, **counts}


def compute(model_name: str, checkpoint: str, tasks: list[str], languages: list[str], out_dir: str,
            settings: FeatureSettings = FeatureSettings(), features=("EMB", "LM_L", "LM_EM"),
            progress: bool = True, init_seed: int = 0, *, data_dir: str | None = None, partitioning=None,
            model=None, compiler_options=None):
    """Computes the features and writes the output directory (module docstring); returns the table.

    `data_dir`: the local data directory (None: the hub, or the dataset's own); `partitioning`: a
    `jaxlt.partitioning.PartitioningConfig` (None: data-parallel); `model`: a
    `jaxlt.experiment.ModelConfig` whose overrides (dtype, remat ...) apply to the checkpoint's config."""
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
    if model is not None:
        config = config.replace(**model.overrides())
    mesh = rules = None
    if partitioning is not None:
        mesh, rules = partitioning.make_mesh(), partitioning.rules()
    mf = ModelFeatures(config, params, spm, settings, data_dir=data_dir, mesh=mesh, rules=rules,
                       compiler_options=compiler_options)
    rows, centroids, counts = [], {}, {}
    t0 = time.perf_counter()
    for task, lang in tqdm(list(itertools.product(tasks, languages)), desc="model features", disable=not progress):
        key = f"{model_name}/{task}/{lang}"
        counts[key] = {}
        if "EMB" in features:
            texts, empty = sample_texts(task, lang, settings.num_sentences, settings.seed, data_dir)
            centroids[key], truncated = mf.centroid(texts)
            counts[key].update(emb_sentences=len(texts), emb_truncated=truncated, empty_texts_skipped=empty)
            if truncated:
                log.info("%s: %d of %d sentences truncated to %d tokens for EMB", key, truncated, len(texts),
                         settings.input_length)
        if {"LM_L", "LM_EM"} & set(features):
            lm = mf.lm_features(task, lang)
            counts[key].update(lm_chunks=lm["sentences"], lm_spans=lm["spans"], lm_texts=lm["texts"],
                               lm_partial_chunks_dropped=lm["partial_chunks_dropped"])
            if lm["sentences"] < settings.num_sentences:
                log.warning("%s: the training text gives %d span-corruption chunks of %d tokens, fewer than "
                            "num_sentences=%d", key, lm["sentences"], settings.chunk_tokens, settings.num_sentences)
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

    partitioning = model_config = None
    if args.gin_file:  # the mesh, rules and model overrides, read here once and passed down
        from jaxlt import experiment_gin
        from jaxlt.gin_flags import parse_gin

        parse_gin(args.gin_file, [])
        partitioning, model_config = experiment_gin.from_gin("hardware"), experiment_gin.from_gin("model")
    data_dir = sources.resolve_data_dir(args.data_dir) if args.data_dir else sources.get_data_dir()
    settings = FeatureSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(FeatureSettings)})
    model = args.model or os.path.basename(os.path.normpath(args.checkpoint.replace("init:", "")))
    split = lambda s: [x for x in s.replace(" ", "").split(",") if x]  # noqa: E731
    try:
        table, centroids, seconds = compute(model, args.checkpoint, split(args.tasks), split(args.languages),
                                            args.out, settings, tuple(split(args.features)),
                                            progress=not args.no_progress, data_dir=data_dir,
                                            partitioning=partitioning, model=model_config)
    except (ValueError, KeyError, GridSpecError) as e:
        print(f"jaxlt features model: error: {e}", file=os.sys.stderr)
        return 2
    print(f"wrote {len(table)} language-feature rows and {len(centroids)} centroids to {args.out} "
          f"in {seconds:.1f}s")
    return 0
