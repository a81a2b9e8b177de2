"""A tiny random BERT encoder for tests and `make encoder-smoke`, built offline: a WordPiece tokenizer trained with
the `tokenizers` library on the corpus's train texts, and a 2-layer `BertModel` from a `BertConfig` (seeded).

    python -m mmaff.baselines.tiny_encoder --corpus data/mmaffin --out outputs/tiny-encoder
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from pathlib import Path

from mmaff.encode.corpus import read_records

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def corpus_texts(corpus_root: str | Path, split: str = "train") -> Iterator[str]:
    for record in read_records(corpus_root, split):
        if record.get("text"):
            yield record["text"]


def build_tiny_encoder(corpus_root: str | Path, out: str | Path, vocab_size: int = 2000, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS)
    tokenizer.train_from_iterator(sorted(set(corpus_texts(corpus_root))), trainer=trainer)
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = BertTokenizerFast(tokenizer_object=tokenizer, model_max_length=512)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=tokenizer.token_to_id("[PAD]"),
    )
    torch.manual_seed(seed)
    out = Path(out)
    BertModel(config).save_pretrained(out)
    fast.save_pretrained(out)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="data/mmaffin", help="built corpus whose train texts train the tokenizer")
    parser.add_argument("--out", default="outputs/tiny-encoder", help="output folder")
    args = parser.parse_args(argv)
    if not (Path(args.corpus) / "manifest.json").is_file():
        raise ValueError(f"--corpus {args.corpus}: not a built corpus; run `make build-mmaffin` first")
    print(build_tiny_encoder(args.corpus, args.out))


if __name__ == "__main__":
    from mmaff.eval.cli_common import run_cli

    run_cli(main, extra=(ValueError,))
