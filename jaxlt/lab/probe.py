"""Alignment probe: translation retrieval with a model's mean-pooled encoder states.

For two lab languages, the same concepts (words) or the same meanings (the parallel test
sentences of `lab_ner`) are encoded; each item of the source language retrieves its nearest
neighbour (cosine) among the target language's items; the score is the share retrieved correctly.
Words are only the concepts whose forms differ between the two languages (identical forms would
be retrieved trivially), so word retrieval measures learnt alignment, not spelling; chance is
1 / number of items. Run before a transfer matrix: without alignment there is little to transfer.
"""

from __future__ import annotations

import numpy as np

from jaxlt.lab import data, grammar


def embed(loaded, texts: list[str], max_length: int = 48, batch_size: int = 64) -> np.ndarray:
    """Mean-pooled final encoder states [N, d_model] (pads excluded), L2-normalised."""
    import jax
    import jax.numpy as jnp

    from jaxlt.model.network import Transformer

    model = Transformer(loaded.config)
    vocab = loaded.vocabulary

    @jax.jit
    def encode(params, tokens):
        states = model.apply({"params": params}, tokens, method=Transformer.encode)
        mask = (tokens > 0).astype(jnp.float32)[..., None]
        return (states * mask).sum(1) / jnp.maximum(mask.sum(1), 1.0)

    out = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        array = np.zeros((batch_size, max_length), np.int32)
        for i, text in enumerate(chunk):
            ids = list(vocab.encode(text))[:max_length - 1] + [1]
            array[i, :len(ids)] = ids
        out.append(np.asarray(encode(loaded.params, array))[:len(chunk)])
    x = np.concatenate(out)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def retrieval_accuracy(source: np.ndarray, target: np.ndarray) -> float:
    """Share of rows i whose nearest target row (cosine) is row i."""
    return float(np.mean(np.argmax(source @ target.T, axis=1) == np.arange(len(source))))


def alignment(model_dir: str, codes: list[str] | None = None, num_sentences: int = 200) -> dict:
    """{"words": {(a, b): acc}, "sentences": {(a, b): acc}, "word_items": {(a, b): n}} for ordered pairs."""
    from jaxlt.model.loading import load_checkpoint

    loaded = load_checkpoint(model_dir)
    langs = [lang for lang in data.languages() if codes is None or lang.code in codes]
    words = {lang.code: embed(loaded, [lang.word(c) for c in grammar.CONCEPTS]) for lang in langs}
    sentences = {}
    for lang in langs:
        records = data.task_records("lab_ner", lang, "test", num_sentences)
        sentences[lang.code] = embed(loaded, [" ".join(r["tokens"]) for r in records])
    out = {"words": {}, "sentences": {}, "word_items": {}}
    for a in langs:
        for b in langs:
            if a.code == b.code:
                continue
            differ = [i for i, c in enumerate(grammar.CONCEPTS) if a.word(c) != b.word(c)]
            if differ:
                out["words"][(a.code, b.code)] = retrieval_accuracy(words[a.code][differ], words[b.code][differ])
                out["word_items"][(a.code, b.code)] = len(differ)
            out["sentences"][(a.code, b.code)] = retrieval_accuracy(sentences[a.code], sentences[b.code])
    return out
