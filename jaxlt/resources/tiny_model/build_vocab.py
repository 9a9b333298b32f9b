"""Rebuilds the tiny multilingual SentencePiece model used by tests and the demo.

    python jaxlt/resources/tiny_model/build_vocab.py

Same conventions as mT5's spiece.model: pad=0, eos=1, unk=2, no bos, byte
fallback, and 100 sentinels appended at the end (`<extra_id_0>` is the last id).
"""

import os

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as spm_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
NUM_SENTINELS = 100


def main() -> None:
    prefix = os.path.join(HERE, "_base")
    spm.SentencePieceTrainer.train(
        input=os.path.join(HERE, "corpus.txt"), model_prefix=prefix, vocab_size=900,
        model_type="unigram", character_coverage=1.0, byte_fallback=True, hard_vocab_limit=False,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=1, seed_sentencepiece_size=100000,
        minloglevel=2)
    proto = spm_pb2.ModelProto()
    with open(prefix + ".model", "rb") as f:
        proto.ParseFromString(f.read())
    for i in reversed(range(NUM_SENTINELS)):
        piece = proto.pieces.add()
        piece.piece = f"<extra_id_{i}>"
        piece.score = 0.0
        piece.type = spm_pb2.ModelProto.SentencePiece.USER_DEFINED
    with open(os.path.join(HERE, "spiece.model"), "wb") as f:
        f.write(proto.SerializeToString())
    for ext in (".model", ".vocab"):
        os.remove(prefix + ext)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(HERE, "spiece.model"))
    print("pieces:", sp.get_piece_size(), "last:", sp.id_to_piece(sp.get_piece_size() - 1))


if __name__ == "__main__":
    main()
