"""MASIVE's own model family as a recipe: T5 / mT5 masked-span prediction (arXiv 2407.12196, `NickDeas/MASIVE`).

The authors' framing: the post with its affective-state words replaced by T5 sentinels is the input
(``I feel <extra_id_0>.``), the span terms behind their sentinels are the target (``<extra_id_0> hurt``), and a
beam search (5 beams, 5 returned) is split back into terms at the sentinels (their `code/metrics.py`: slots
stripped, empty ones dropped). Our records render masks as ``[MASK1]``, ``[MASK2]`` ...: they are mapped back to
``<extra_id_0>``, ``<extra_id_1>`` ... here. Each returned beam is written as the record's own answer template
renders those terms, so `mmaff.score` parses the ranked list and reports Acc@1/3/5 like any other backend's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from mmaff.encode.corpus import read_records

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

MASK = re.compile(r"\[MASK(\d+)\]")
SENTINEL = re.compile(r"<extra_id_\d+>")
NON_TERMS = re.compile(r"<pad>|</s>")  # what a decoded T5 sequence holds besides sentinels and terms
OPEN = "open"
BACKEND = "seq2seq"
# T5's vocabulary order: pad 0, eos 1, unk 2 (the authors' log-perplexity weights these ids 0), then sentinels
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
SENTINELS = 100


def sentinel(index: int) -> str:
    return f"<extra_id_{index}>"


def t5_input(text: str) -> str:
    """A record's text with ``[MASKn]`` back as T5's ``<extra_id_{n-1}>``."""
    return MASK.sub(lambda m: sentinel(int(m.group(1)) - 1), text)


def t5_target(terms: Sequence[str]) -> str:
    """The authors' target: each term after its sentinel, ``<extra_id_0> hurt <extra_id_1> tired``."""
    return " ".join(f"{sentinel(i)} {term}" for i, term in enumerate(terms))


def beam_terms(decoded: str) -> list[str]:
    """The terms of one decoded beam (special tokens kept): split at the sentinels, slots stripped, empty slots
    dropped, as the authors' metrics do."""
    slots = SENTINEL.split(NON_TERMS.sub(" ", decoded))
    return [slot.strip() for slot in slots if slot.strip()]


# ------------------------------------------------------------------------------------------------- records


def open_records(corpus_root: str | Path, split: str, datasets: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The open-vocabulary (masked-span) records of one split of a built corpus, in file order."""
    records = read_records(corpus_root, split, datasets=list(datasets) or None)
    return [r for r in records if r["target_type"] == OPEN]


def training_pairs(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, str]]:
    """``{"id", "source", "target"}`` per record: T5 input and target of the authors' framing."""
    for record in records:
        yield {"id": record["id"], "source": t5_input(record["text"]), "target": t5_target(record["gold"])}


@dataclass(frozen=True)
class AnswerRenderer:
    """Renders a beam's terms as the record's template writes its answers (what `mmaff.score` parses)."""

    def render(self, record: dict[str, Any], terms: list[str]) -> str:
        from mmaff.data.answers import render_answer
        from mmaff.data.registry import load_registry
        from mmaff.data.templates import load_template

        subtasks = load_registry()[record["dataset"]].subtasks
        style, family = record["template"]["name"].split("/", 1)
        spec = load_template(family, style).answer_spec(subtasks[record["subtask"]], subtasks)
        return render_answer(terms, spec, record["label_space"])


def ranked_answers(record: dict[str, Any], decoded_beams: Sequence[str]) -> list[str]:
    """The record's prediction: its beams, best first, each rendered as the template's answer."""
    renderer = AnswerRenderer()
    return [renderer.render(record, beam_terms(beam)) for beam in decoded_beams]


# ----------------------------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class BeamSettings:
    """MASIVE's evaluation decoding (eval/tasks/masive/ASI.yaml): 5 beams, 5 returned."""

    num_beams: int = 5
    num_return_sequences: int = 5
    max_new_tokens: int = 24
    batch_size: int = 16
    max_source_length: int = 512

    def decoding(self) -> dict[str, Any]:
        return {
            "do_sample": False,
            "num_beams": self.num_beams,
            "num_return_sequences": self.num_return_sequences,
            "max_new_tokens": self.max_new_tokens,
        }


def predict(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[dict[str, Any]],
    settings: BeamSettings = BeamSettings(),
) -> Iterator[dict[str, Any]]:
    """Prediction rows ``{"id", "prediction": [beam answers, best first], "model", "backend", "seconds"}``."""
    import time

    import torch

    model.eval()
    for start in range(0, len(records), settings.batch_size):
        batch = records[start : start + settings.batch_size]
        began = time.perf_counter()
        inputs = tokenizer(
            [t5_input(r["text"]) for r in batch],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=settings.max_source_length,
        ).to(model.device)
        with torch.no_grad():
            generated = model.generate(**inputs, **settings.decoding())
        decoded = tokenizer.batch_decode(generated, skip_special_tokens=False)
        seconds = (time.perf_counter() - began) / len(batch)
        k = settings.num_return_sequences
        for i, record in enumerate(batch):
            yield {
                "id": record["id"],
                "prediction": ranked_answers(record, decoded[i * k : (i + 1) * k]),
                "model": str(model.name_or_path),
                "backend": BACKEND,
                "seconds": round(seconds, 4),
            }


def run_description(model: str, corpus_root: str | Path, split: str, tasks: Iterable[str], settings: BeamSettings):
    """The run file `mmaff.score` reads beside the predictions (backend, model, corpus build, split, decoding)."""
    from datetime import UTC, datetime

    from mmaff.eval.predictions import corpus_fingerprint

    decoding = settings.decoding()
    return {
        "backend": BACKEND,
        "model": model,
        **corpus_fingerprint(corpus_root),
        "split": split,
        "decoding": {**decoding, "tasks": {task: decoding for task in sorted(set(tasks))}},
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_predictions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    corpus_root: str | Path,
    split: str,
    out: str | Path,
    settings: BeamSettings = BeamSettings(),
) -> int:
    """Beam-search predictions of every open record of `split` into `out` (+ its run file); rows written."""
    from mmaff.eval.predictions import PredictionWriter, write_run
    from mmaff.eval.tasks import record_task

    records = open_records(corpus_root, split)
    Path(out).unlink(missing_ok=True)  # a fresh run: the trained model changed
    run = run_description(str(model.name_or_path), corpus_root, split, map(record_task, records), settings)
    Path(out).with_name(Path(out).name.removesuffix(".jsonl") + ".run.json").unlink(missing_ok=True)
    write_run(out, run)
    with PredictionWriter(out) as writer:
        return writer.write(predict(model, tokenizer, records, settings))


# ------------------------------------------------------------------------------------------- tiny T5 model


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """A T5 tokenizer (Unigram, as T5's SentencePiece) trained offline on `texts`, with pad / eos / unk at ids
    0 / 1 / 2 and the sentinels ``<extra_id_0..99>``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import T5TokenizerFast

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    sentinels = [sentinel(i) for i in range(SENTINELS)]
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=[*SPECIAL_TOKENS, *sentinels], unk_token="<unk>"
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_ids=0,
        additional_special_tokens=sentinels,
    )


def corpus_texts(corpus_root: str | Path) -> Iterator[str]:
    """Every record's text and gold terms of the corpus (all splits): the tiny tokenizer's training text."""
    for path in sorted(Path(corpus_root).glob("*/*.jsonl")):
        with open(path, "rb") as f:
            for record in map(orjson.loads, f):
                if record.get("text"):
                    yield record["text"]
                if record["target_type"] == OPEN:
                    yield " ".join(record["gold"])


def build_tiny_t5(corpus_root: str | Path, out: str | Path, seed: int = 0) -> Path:
    """A tiny random T5 (from `T5Config`) with a tokenizer trained on the corpus, saved to `out`; nothing
    downloads."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = train_tokenizer(corpus_texts(corpus_root))
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    model.generation_config.decoder_start_token_id = tokenizer.pad_token_id
    out = Path(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m mmaff.baselines.seq2seq tiny --corpus C --out DIR``: the tiny T5 of `make seq2seq-smoke`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mmaff.baselines.seq2seq", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    tiny = sub.add_parser("tiny", help="build a tiny random T5 + tokenizer trained on the corpus text")
    tiny.add_argument("--corpus", required=True, help="a built corpus folder (make build-mmaffin)")
    tiny.add_argument("--out", required=True, help="folder for the model and tokenizer")
    args = parser.parse_args(argv)
    if not (Path(args.corpus) / "manifest.json").is_file():
        parser.error(f"--corpus {args.corpus}: no manifest.json; build it first (make build-mmaffin)")
    print(build_tiny_t5(args.corpus, args.out))


if __name__ == "__main__":
    main()
