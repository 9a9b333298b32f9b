"""A small, learnable seqio Task from in-memory examples, for tests, demos and benchmarks.

Each input is a few filler words with one keyword hidden among them; the target
is the keyword's class ("animal", "colour", "number", "fruit"). A model must
find the keyword whatever its position and surroundings, so held-out examples
(different fillers and positions) measure learning rather than memorisation.
"""

from __future__ import annotations

import random

import jaxlt.data.tf_cpu  # noqa: F401  (hides accelerators from TensorFlow before seqio / JAX)
import seqio
import tensorflow as tf

from jaxlt.data.vocabulary import get_vocabulary

CLASSES = {
    "animal": ["dog"],
    "colour": ["red"],
    "number": ["two"],
    "fruit": ["apple"],
}
FILLERS = ["the", "a", "house", "is", "near", "was", "and", "water", "big", "small", "old", "new",
           "of", "in", "we", "they", "see", "saw", "city", "day", "night", "road", "tree", "book"]


def make_examples(n: int, seed: int) -> list[dict[str, str]]:
    """`n` examples, balanced over the classes, deterministic in `seed`."""
    rng = random.Random(seed)
    labels = sorted(CLASSES)
    out = []
    for i in range(n):
        label = labels[i % len(labels)]
        words = rng.sample(FILLERS, rng.randint(2, 5))
        words.insert(rng.randint(0, len(words)), rng.choice(CLASSES[label]))
        out.append({"inputs": "classify: " + " ".join(words), "targets": label})
    return out


def accuracy(targets, predictions) -> dict[str, float]:
    return {"accuracy": 100.0 * sum(t == p for t, p in zip(targets, predictions)) / max(len(targets), 1)}


def register_fixture_task(name: str = "jaxlt_fixture.keyword_class", spm_path: str | None = None,
                          num_train: int = 32, num_eval: int = 32, seed: int = 0) -> str:
    """Registers (once) the fixture Task with "train" and "validation" splits; returns its name."""
    if name in seqio.TaskRegistry.names():
        return name
    splits = {"train": make_examples(num_train, seed), "validation": make_examples(num_eval, seed + 1)}

    def dataset_fn(split, shuffle_files=False, seed=None):
        rows = splits[split]
        return tf.data.Dataset.from_tensor_slices(
            {"inputs": [r["inputs"] for r in rows], "targets": [r["targets"] for r in rows]})

    if spm_path is None:
        from importlib import resources

        spm_path = str(resources.files("jaxlt") / "resources" / "tiny_model" / "spiece.model")
    vocab = get_vocabulary(spm_path)
    seqio.TaskRegistry.add(
        name,
        source=seqio.FunctionDataSource(dataset_fn, splits=list(splits),
                                        num_input_examples={k: len(v) for k, v in splits.items()}),
        preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
        output_features={"inputs": seqio.Feature(vocab, add_eos=True),
                         "targets": seqio.Feature(vocab, add_eos=True)},
        metric_fns=[accuracy])
    return name
