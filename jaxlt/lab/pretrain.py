"""Pre-trains the lab's tiny multilingual mT5 with mT5's span-corruption objective, deterministically.

    jaxlt lab pretrain --out jaxlt/resources/lab_model          # the shipped checkpoint
    jaxlt lab pretrain --out /tmp/x --steps 2 --no_save         # first steps only (the test)

Recipe (`PretrainConfig`, recorded in the output's `recipe.json`):
1. the lab's languages (`jaxlt.lab.data.DEFAULT_LANGUAGES`) and their pre-training documents
   (a few sentences each, the same meanings in every language, interleaved in a seeded order);
2. a SentencePiece unigram model trained on that text plus the lab tasks' training inputs and
   targets (single-threaded, so deterministic), with mT5's conventions: pad 0, eos 1, unk 2,
   byte fallback, 100 sentinels at the end;
3. span corruption (`jaxlt.data.span_corruption`: noise density 0.15, mean span 3) through seqio,
   unshuffled, so the batches depend only on the seed;
4. jaxlt's Trainer (Adam, one CPU device, fp32) for `steps` steps; every step's loss goes to
   `pretrain_log.jsonl`; the final parameters to `config.json` + `model.safetensors` + `spiece.model`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import random
import sys
import time

log = logging.getLogger(__name__)

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED_MODEL = os.path.join(HERE, "resources", "lab_model")
NUM_SENTINELS = 100
LOG_FILE = "pretrain_log.jsonl"
# NER tags as single pieces (no lab word contains a hyphen or a capital after one).
TAG_PIECES = ("▁:", "▁|", "▁B-PER", "▁I-PER", "▁B-ORG", "▁I-ORG", "▁B-LOC", "▁I-LOC")
RECIPE_FILE = "recipe.json"


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    seed: int = 0
    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 200
    # The corpus is sized for 3000 steps; the shipped model stopped at 1000 (a constant learning rate
    # after warmup, so the first 1000 steps do not depend on the total).
    documents_per_language: int = 12000
    sentences_per_document: int = 3
    # share of a non-Latin-script language's documents with words in Latin letters (data.pretraining_documents)
    code_switch: float = 0.0
    max_tokens: int = 40  # span-corruption chunk length
    input_length: int = 48
    target_length: int = 16
    spm_vocab_size: int = 1500
    d_model: int = 128
    d_kv: int = 32
    d_ff: int = 256
    num_layers: int = 2
    num_heads: int = 4
    dropout_rate: float = 0.0
    save_every: int = 1000

    def model_config(self, vocab_size: int):
        from jaxlt.model.config import get_config

        padded = -(-vocab_size // 128) * 128
        return get_config("mt5_tiny", vocab_size=padded, d_model=self.d_model, d_kv=self.d_kv,
                          d_ff=self.d_ff, num_layers=self.num_layers, num_decoder_layers=self.num_layers,
                          num_heads=self.num_heads, dropout_rate=self.dropout_rate)


def corpus(config: PretrainConfig) -> list[str]:
    """The pre-training documents of every lab language, interleaved in a seeded order."""
    from jaxlt.lab import data

    docs = []
    for language in data.languages(seed=config.seed):
        docs += data.pretraining_documents(language, config.documents_per_language,
                                           config.sentences_per_document, config.seed, config.code_switch)
    random.Random(f"jaxlt-lab-pretrain-order-{config.seed}").shuffle(docs)
    return docs


def vocabulary_text(config: PretrainConfig, docs: list[str]) -> list[str]:
    """SentencePiece training text: a slice of the documents plus the task formats' fixed words
    (label words, field names, `tok : TAG |`), so each is a piece of its own. It does not read
    the tasks' records: the tasks can change without changing the model."""
    from jaxlt.lab import data

    lines = list(docs[:20000])
    rng = random.Random(f"jaxlt-lab-vocabulary-{config.seed}")
    for doc in docs[:2000]:
        words = doc.split()[:8]
        lines.append(" | ".join(f"{w} : {rng.choice(data.NER_TAGS)}" for w in words))
        lines.append(f"lab_nli: premise: {' '.join(words[:4])} hypothesis: {' '.join(words[4:6])}")
        lines.append(rng.choice(data.NLI_LABELS))
    return lines


def train_sentencepiece(lines: list[str], out_path: str, vocab_size: int) -> str:
    import tempfile

    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as spm_pb2

    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "corpus.txt")
        with open(text, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        prefix = os.path.join(tmp, "base")
        spm.SentencePieceTrainer.train(
            input=text, model_prefix=prefix, vocab_size=vocab_size, model_type="unigram",
            character_coverage=1.0, byte_fallback=True, hard_vocab_limit=False, pad_id=0, eos_id=1,
            unk_id=2, bos_id=-1, num_threads=1, seed_sentencepiece_size=200000,
            input_sentence_size=0, shuffle_input_sentence=False, split_by_number=False,
            split_by_unicode_script=False, user_defined_symbols=list(TAG_PIECES), minloglevel=2)
        proto = spm_pb2.ModelProto()
        with open(prefix + ".model", "rb") as f:
            proto.ParseFromString(f.read())
    # The trainer spec records the temporary paths; drop them so the file is reproducible.
    del proto.trainer_spec.input[:]
    proto.trainer_spec.model_prefix = ""
    for i in reversed(range(NUM_SENTINELS)):
        piece = proto.pieces.add()
        piece.piece = f"<extra_id_{i}>"
        piece.score = 0.0
        piece.type = spm_pb2.ModelProto.SentencePiece.USER_DEFINED
    from jaxlt import atomic

    atomic.write_bytes(out_path, proto.SerializeToString())
    return out_path


def batches(config: PretrainConfig, docs: list[str], vocabulary: str | None = None):
    """Span-corrupted, feature-converted batches (numpy), deterministic for the seed; `vocabulary`:
    the SentencePiece model (None: the configured one)."""
    import seqio

    from jaxlt.data.span_corruption import register_text_span_corruption_task
    from jaxlt.data.tasks import vocabulary_suffix

    name = f"lab_pretrain_span_corruption_{hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True).encode()).hexdigest()[:8]}"
    name += vocabulary_suffix(vocabulary)
    # concat_batch=1: each document chunked on its own, as the shipped lab model was pre-trained
    register_text_span_corruption_task(name, lambda split: docs, max_tokens=config.max_tokens, concat_batch=1,
                                       vocabulary=vocabulary)
    lengths = {"inputs": config.input_length, "targets": config.target_length}
    ds = seqio.get_mixture_or_task(name).get_dataset(lengths, split="train", shuffle=False,
                                                      seed=config.seed, num_epochs=1, use_cached=False)
    ds = seqio.EncDecFeatureConverter(pack=False)(ds, lengths)
    return ds.batch(config.batch_size, drop_remainder=True).as_numpy_iterator()


def params_digest(params) -> str:
    import jax
    import numpy as np

    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        h.update(jax.tree_util.keystr(path).encode())
        h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()[:16]


def pretrain(config: PretrainConfig, out_dir: str, *, save: bool = True, progress: bool = False) -> dict:
    """Runs the recipe into `out_dir`; returns {"losses": [...], "params_sha256": ..., ...}."""
    import jaxlt.data.tf_cpu  # noqa: F401
    import jax
    import numpy as np

    from jaxlt import atomic, partitioning
    from jaxlt.data.vocabulary import get_vocabulary
    from jaxlt.model.hf_io import save_hf_checkpoint
    from jaxlt.model.network import unboxed_init_params
    from jaxlt.train.engine import Trainer
    from jaxlt.train.optimizer import make_optimizer

    os.makedirs(out_dir, exist_ok=True)
    t0 = time.perf_counter()
    docs = corpus(config)
    spm_path = train_sentencepiece(vocabulary_text(config, docs), os.path.join(out_dir, "spiece.model"),
                                   config.spm_vocab_size)
    vocab_size = get_vocabulary(spm_path).vocab_size  # passed explicitly: no process-wide vocabulary
    model_config = config.model_config(vocab_size)
    log.info("corpus: %d documents; vocabulary %d pieces (model vocab %d); %.0fs", len(docs), vocab_size,
             model_config.vocab_size, time.perf_counter() - t0)
    mesh = partitioning.create_mesh((1, 1), devices=jax.devices()[:1])
    trainer = Trainer(model_config, batch_size=config.batch_size,
                      feature_lengths={"inputs": config.input_length, "targets": config.target_length},
                      optimizer=make_optimizer("adam", config.learning_rate, warmup_steps=config.warmup_steps),
                      mesh=mesh, z_loss=0.0, label_smoothing=0.0, loss_normalizing_factor=None)
    params = unboxed_init_params(model_config, jax.random.PRNGKey(config.seed))
    state = trainer.init_state(params)
    n_params = trainer.param_count()
    log_path = os.path.join(out_dir, LOG_FILE)
    recipe = {"config": dataclasses.asdict(config), "model": model_config.to_hf_dict(), "parameters": n_params,
              "documents": len(docs), "spm_vocab_size": vocab_size, "jax": jax.__version__,
              "command": "jaxlt lab pretrain " + " ".join(sys.argv[3:] if sys.argv[1:3] == ["lab", "pretrain"] else [])}
    iterator = batches(config, docs, spm_path)
    losses = []
    start = time.perf_counter()
    with atomic.atomic_path(log_path) as tmp_log, open(tmp_log, "w") as log_file:  # renamed when complete
        step = 0
        while step < config.steps:
            chunk = min(config.save_every, config.steps - step)
            state, history = trainer.train(state, iterator, step + chunk, seed=config.seed, progress=progress)
            step += chunk
            for record in history:
                if "loss" in record:
                    losses.append(record["loss"])
                    log_file.write(json.dumps({"step": record["step"], "loss": record["loss"],
                                               "grad_norm": record["grad_norm"],
                                               "seconds": round(time.perf_counter() - start, 2)}) + "\n")
            log_file.flush()
            log.info("step %d: loss %.4f (mean of last %d: %.4f), %.0fs", step, losses[-1], chunk,
                     float(np.mean(losses[-chunk:])), time.perf_counter() - start)
            if save:
                save_hf_checkpoint(out_dir, model_config, jax.device_get(state.params))
    digest = params_digest(jax.device_get(state.params))
    recipe.update(steps_done=step, final_loss=losses[-1], params_sha256=digest,
                  train_seconds=round(time.perf_counter() - start, 1))
    atomic.write_json(os.path.join(out_dir, RECIPE_FILE), recipe, indent=2)
    return {"losses": losses, "params_sha256": digest, "out_dir": out_dir}


def read_log(path: str) -> list[dict]:
    with open(os.path.join(path, LOG_FILE) if os.path.isdir(path) else path) as f:
        return [json.loads(line) for line in f if line.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxlt lab pretrain", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=SHIPPED_MODEL, help=f"output directory (default {SHIPPED_MODEL})")
    for field in dataclasses.fields(PretrainConfig):
        p.add_argument(f"--{field.name}", type=type(field.default), default=field.default,
                       help=f"(default {field.default})")
    p.add_argument("--no_save", action="store_true", help="do not write the checkpoint (log and recipe only)")
    p.add_argument("--progress", action="store_true")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    config = PretrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainConfig)})
    if config.steps <= 0 or config.batch_size <= 0:
        print("jaxlt lab pretrain: --steps and --batch_size must be positive", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.ERROR)
    result = pretrain(config, args.out, save=not args.no_save, progress=args.progress)
    print(f"pre-trained {len(result['losses'])} steps, final loss {result['losses'][-1]:.4f}, "
          f"params sha256 {result['params_sha256']} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
