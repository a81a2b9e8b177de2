"""Label-likelihood scoring with the HF backend: one log-likelihood per label of a record's label space, for the
threshold-free multi-label ranking metrics (AP-micro, AUC-micro, LRAP; `mmaff.eval.metrics.multilabel_ranking`);
and for open-vocabulary records (MASIVE) the NLL and log-perplexity of the gold answer.

Candidates. The candidate of label L is the answer the record's template writes for the gold value [L] (a
single-label record: L), rendered by `mmaff.data.answers.render_answer` with the template's answer spec for the
record's subtask, exactly as the builder writes training answers: "3. anger". It stops before the end of the turn
(``<|im_end|>``): in a multi-label answer more labels may follow ("3. anger, 6. disgust"), so the score is the
likelihood that the answer starts with L. Answers list labels in label-space order, so a trained model gives
labels late in that order less mass at the start. That bias is part of this scoring: an offset per label leaves
each label's ranking of the items (per-label AP / AUC) as it is, but it moves LRAP (labels ranked within an item)
and the micro averages (all labels pooled).

Score. score(L) = sum of log p(token | prompt, earlier candidate tokens) over the candidate's tokens, i.e.
log P(candidate | prompt): the probability the model gives to answering L. The sum, not the mean: after the
label's number the name is nearly determined for a trained model, so the mean would reward labels with long,
predictable names (several near-zero tokens diluting the informative first ones) and is no probability. Each
row also records the token count per label (``label_tokens``), so a length-normalised score is score / n.

Prompt. As in generation (`mmaff.eval.generate.HFGenerator`, used here for prompts, media and batching): the record's
messages without the gold answer, the model's chat template with ``add_generation_prompt=True``, media through
the training `SampleEncoder`. The candidate is tokenized on its own and appended, as the training encoder
tokenizes the assistant segment apart from the prompt.

Prefix sharing (method ``"prefix"``, the default). A batch of prompts (left-padded, media included) runs once
with a KV cache; its last logits give every candidate's first token. Then the candidates of all its records run
in one forward (at most `max_rows` rows each) over copies of the cache rows of their records, right-padded, with
the attention mask [prompt mask, candidate mask] and explicit mRoPE positions: a candidate continues the prompt's
last text group, so its positions are (last prompt position) + 1, 2, ... in all three rope dims, which is what the
model's `get_rope_index` gives on the full prompt + candidate sequence (the training positions). This is the
prompt's max position + 1 except after a video whose temporal positions run past the text that follows it
(`get_rope_index` advances text after a video by its spatial extent only; `generate` would use max + 1 there).
Pad tokens score nothing. Method ``"full"`` is the reference: one forward per (record, label) over the full
sequence, the model computing its own positions; the tests check both give the same scores.

Gold answers (target type ``open``, MASIVE; arXiv 2407.12196, code/masive_eval.py). Teacher-forced, the
continuation is the record's training answer as its template rendered it ("worried, overwhelmed") followed by the
end-of-turn token ``<|im_end|>``: the tokens a trained model produces before it stops (the ``\n`` the chat
template puts after ``<|im_end|>`` is trained but never generated, so it is left out). Per record:
``nll`` = -(sum of log p over the answer tokens and ``<|im_end|>``), the authors' ``nll`` (summed NLL over the
T5 target, whose ``</s>`` it includes); ``log_perplexity`` = -(sum over the answer tokens only), the authors'
``log_perp`` (summed cross-entropy with pad / eos / unk weighted 0: our end of turn plays their ``</s>``). Both
are sums in nats, not per-token means (divide by ``answer_tokens`` for one); ``nll`` >= ``log_perplexity``. A
token the model gives probability 0 makes them ``inf`` (written as ``Infinity``, counted apart by the scorer).

Output: a `PredictionWriter` file (resumable, data-parallel under ``accelerate launch`` like `mmaff.eval.generate`),
one row per record: ``{"id", "prediction": {label: score}, "label_tokens": {label: n}, "scoring":
"label_likelihood", "model", "backend": "hf", "seconds", "prompt_tokens"}``, or for an open record ``{"id",
"prediction": {"nll": x, "log_perplexity": y}, "answer_tokens": n, "end_tokens": 1, "scoring":
"gold_likelihood", ...}``; read back with `read_label_scores`.

Run: ``python -m mmaff.eval.likelihood --model PATH --corpus data/mmaffin --split test --out label_scores.jsonl``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mmaff.data.answers import render_answer
from mmaff.data.media import MediaBudget
from mmaff.data.registry import load_registry
from mmaff.data.templates import load_template
from mmaff.eval.generate import (
    DEFAULT_MAX_PROMPT_TOKENS,
    GenerateReport,
    HFGenerator,
    Prediction,
    run_data_parallel,
    run_description,
)
from mmaff.eval.predictions import PredictionFileError, read_predictions

if TYPE_CHECKING:
    import torch
    from transformers import DynamicCache

    from mmaff.encode.samples import Sample

log = logging.getLogger(__name__)

SCORING = "label_likelihood"
GOLD_SCORING = "gold_likelihood"
LABEL_TARGET_TYPES = ("multi", "single")
GOLD_TARGET_TYPES = ("open",)
TARGET_TYPES = LABEL_TARGET_TYPES + GOLD_TARGET_TYPES
GOLD_KEYS = ("nll", "log_perplexity")
END_OF_TURN = "<|im_end|>"  # Qwen2.5-VL's end of an assistant turn: generation stops there
METHODS = ("prefix", "full")
DEFAULT_MAX_ROWS = 256  # candidate rows per continuation forward (each holds a copy of its prompt's KV cache)

T = TypeVar("T")
R = TypeVar("R")


# ------------------------------------------------------------------------------------------------ candidates


def candidate_texts(record: dict[str, Any]) -> dict[str, str]:
    """label -> the answer the record's template writes when that label is the whole gold value (label order)."""
    if record["target_type"] not in LABEL_TARGET_TYPES:
        raise ValueError(f"{record['id']}: a {record['target_type']!r} record has no labels to score")
    style, family = record["template"]["name"].split("/", 1)
    template = load_template(family, style)
    if template.version != record["template"]["version"]:
        raise ValueError(
            f"{record['id']}: built with template {template.name} v{record['template']['version']}, "
            f"templates/ now holds v{template.version}; rebuild the corpus"
        )
    subtasks = load_registry()[record["dataset"]].subtasks
    spec = template.answer_spec(subtasks[record["subtask"]], subtasks)
    space = record["label_space"]
    multi = record["target_type"] == "multi"
    return {label: render_answer([label] if multi else label, spec, space) for label in space["labels"]}


def gold_answer(record: dict[str, Any]) -> str:
    """The answer an open-vocabulary record trains on, as its template rendered it at build time."""
    if record["target_type"] not in GOLD_TARGET_TYPES:
        raise ValueError(f"{record['id']}: a {record['target_type']!r} record is scored by label, not gold answer")
    return record["messages"][-1]["content"][0]["text"]


@dataclass(frozen=True)
class Candidates:
    """The labels of one label space and the token ids of their candidate answers; or (`end_tokens` > 0) the one
    gold continuation of an open record, whose last `end_tokens` tokens end the turn."""

    labels: tuple[str, ...]
    token_ids: tuple[tuple[int, ...], ...]
    end_tokens: int = 0


@dataclass
class Item:
    """One record ready to score: its prompt sample, the prompt's (3, L) mRoPE positions, its candidates."""

    record: dict[str, Any]
    sample: Sample
    positions: torch.Tensor
    candidates: Candidates


def continuation_positions(prompt_positions: torch.Tensor, length: int) -> torch.Tensor:
    """(3, length) mRoPE positions of `length` text tokens appended to a prompt whose positions are (3, L)."""
    import torch

    return prompt_positions[:, -1:] + torch.arange(1, length + 1, dtype=prompt_positions.dtype)


# ------------------------------------------------------------------------------------------------- the scorer


def _token_log_probs(logits: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """log p(token) under `logits` (..., V) for `token_ids` (...), in float32."""
    return logits.float().log_softmax(-1).gather(-1, token_ids[..., None]).squeeze(-1)


def _one_ahead(fn: Callable[[T], R], batches: Sequence[T]) -> Iterator[R]:
    """fn(batch) for each batch, the next batch's computed in a thread while the caller works on this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming = pool.submit(fn, batches[0]) if batches else None
        for i in range(len(batches)):
            result = upcoming.result()
            upcoming = pool.submit(fn, batches[i + 1]) if i + 1 < len(batches) else None
            yield result


class LabelScorer:
    """Label-likelihood scores with a transformers Qwen2.5-VL checkpoint (see the module docstring).

    A `mmaff.eval.generate.Backend`: `predict` yields `Prediction`s whose ``text`` is the {label: score} dict, so
    `generate` / `generate_data_parallel` write, resume and merge its files. `batch_size` records share a prompt
    forward; their candidates run in forwards of at most `max_rows` rows."""

    name = "hf"

    def __init__(
        self,
        model_path: str | Path,
        corpus_root: str | Path,
        budget: MediaBudget,
        *,
        batch_size: int = 8,
        dtype: str | torch.dtype = "auto",
        device: str | torch.device | None = None,
        decoder: str = "auto",
        max_prompt_tokens: int = DEFAULT_MAX_PROMPT_TOKENS,
        method: str = "prefix",
        max_rows: int = DEFAULT_MAX_ROWS,
        prefetch: bool = True,
    ) -> None:
        from mmaff.encode.samples import RopeIndex

        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}")
        self.hf = HFGenerator(
            model_path,
            corpus_root,
            budget,
            batch_size=batch_size,
            dtype=dtype,
            device=device,
            decoder=decoder,
            max_prompt_tokens=max_prompt_tokens,
        )
        self.model_name = self.hf.model_name
        self.method, self.max_rows, self.prefetch = method, max_rows, prefetch
        # what decides the scores (the run file's identity); both methods give the same scores
        self.decoding = {"scoring": SCORING, "reduction": "sum", "dtype": self.hf.decoding["dtype"]}
        self.rope = RopeIndex(self.hf.model.config)
        self._candidates: dict[tuple[str, str, str], Candidates] = {}

    @property
    def too_long(self) -> list[str]:
        return self.hf.too_long

    # -- inputs (run in the prefetch thread, the only user of the tokenizer) ----------------------------------------
    def candidates(self, record: dict[str, Any]) -> Candidates:
        """The record's candidates, tokenized once per (dataset, subtask, template); an open record's gold
        continuation (answer + end of turn), tokenized per record."""
        if record["target_type"] in GOLD_TARGET_TYPES:
            answer = self.hf.tokenizer(gold_answer(record), add_special_tokens=False)["input_ids"]
            end = self.hf.tokenizer.convert_tokens_to_ids(END_OF_TURN)
            return Candidates(("gold",), (tuple(answer) + (end,),), end_tokens=1)
        key = (record["dataset"], record["subtask"], record["template"]["name"])
        if key not in self._candidates:
            texts = candidate_texts(record)
            ids = self.hf.tokenizer(list(texts.values()), add_special_tokens=False)["input_ids"]
            self._candidates[key] = Candidates(tuple(texts), tuple(tuple(i) for i in ids))
        return self._candidates[key]

    def prepare(self, records: Sequence[dict[str, Any]]) -> tuple[list[Item], float]:
        """Encoded prompts (media loaded), their positions and candidates; and the seconds it took."""
        start = time.perf_counter()
        items = []
        for record in records:
            sample = self.hf.encode(record)
            items.append(Item(record, sample, self.rope.positions(sample), self.candidates(record)))
        return items, time.perf_counter() - start

    # -- prefix sharing ------------------------------------------------------------------------------------------
    def _score_prefix(self, items: list[Item]) -> list[list[float]]:
        """Candidates' token log-probs, item after item: one prompt forward with a cache, then the candidates."""
        import torch

        inputs = self.hf.collate([item.sample for item in items])
        width = inputs["input_ids"].shape[1]
        # explicit positions: the model's own, with left padding, exist only for batches holding media
        padded = [torch.nn.functional.pad(item.positions, (width - len(item.sample), 0)) for item in items]
        inputs["position_ids"] = torch.stack(padded, dim=1).to(self.hf.device)
        out = self.hf.model(**inputs, use_cache=True, logits_to_keep=1)
        rows = [(k, ids) for k, item in enumerate(items) for ids in item.candidates.token_ids]
        scores: list[list[float]] = []
        for start in range(0, len(rows), self.max_rows):
            chunk = rows[start : start + self.max_rows]
            scores.extend(self._continue(items, chunk, out.past_key_values, inputs["attention_mask"], out.logits))
        return scores

    def _continue(
        self,
        items: list[Item],
        rows: list[tuple[int, tuple[int, ...]]],
        cache: DynamicCache,
        prompt_mask: torch.Tensor,
        prompt_logits: torch.Tensor,
    ) -> list[list[float]]:
        """Token log-probs of candidate rows (item index, token ids), right-padded, in one forward over copied cache
        rows."""
        import torch
        from transformers import DynamicCache

        device, model = self.hf.device, self.hf.model
        owner = torch.tensor([k for k, _ in rows], device=device)
        length = max(len(ids) for _, ids in rows)
        ids = torch.full((len(rows), length), self.hf.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for r, (_, tokens) in enumerate(rows):
            ids[r, : len(tokens)], mask[r, : len(tokens)] = torch.tensor(tokens), 1
        ids, mask = ids.to(device), mask.to(device)
        positions = torch.stack([continuation_positions(item.positions, length) for item in items], dim=1)
        rows_cache = DynamicCache([(k[owner], v[owner]) for k, v, *_ in cache], config=model.config)
        logits = model(
            input_ids=ids,
            attention_mask=torch.cat([prompt_mask[owner], mask], dim=1),
            position_ids=positions.to(device)[:, owner],
            past_key_values=rows_cache,
            use_cache=True,
        ).logits
        first = _token_log_probs(prompt_logits[owner, -1], ids[:, 0])
        rest = _token_log_probs(logits[:, :-1], ids[:, 1:])
        token_log_probs = torch.cat([first[:, None], rest], dim=1).tolist()
        return [row[: len(tokens)] for row, (_, tokens) in zip(token_log_probs, rows)]

    # -- the reference -------------------------------------------------------------------------------------------
    def _score_full(self, items: list[Item]) -> list[list[float]]:
        """Candidates' token log-probs, item after item: one forward per full prompt + candidate sequence,
        positions by the model."""
        return [self._full_sequence(item.sample, ids) for item in items for ids in item.candidates.token_ids]

    def _full_sequence(self, sample: Sample, token_ids: tuple[int, ...]) -> list[float]:
        import torch

        from mmaff.encode.samples import IGNORE_INDEX

        tokens = torch.tensor(token_ids, dtype=torch.long)
        full = dataclasses.replace(
            sample,
            input_ids=torch.cat([sample.input_ids, tokens]),
            labels=torch.cat([sample.labels, torch.full_like(tokens, IGNORE_INDEX)]),
            mm_token_type_ids=torch.cat([sample.mm_token_type_ids, torch.zeros_like(tokens)]),
        )
        logits = self.hf.model(**self.hf.collate([full]), use_cache=False, logits_to_keep=len(tokens) + 1).logits
        return _token_log_probs(logits[0, :-1], tokens.to(self.hf.device)).tolist()

    # -- the backend ---------------------------------------------------------------------------------------------
    def score_batch(self, items: list[Item], encode_seconds: float = 0.0) -> list[Prediction]:
        """Predictions of one batch: {label: score} with the token count of every label's candidate; for an open
        record, the gold answer's NLL and log-perplexity."""
        import torch

        start = time.perf_counter()
        with torch.inference_mode():
            token_log_probs = iter(self._score_prefix(items) if self.method == "prefix" else self._score_full(items))
        seconds = (time.perf_counter() - start + encode_seconds) / len(items)
        predictions = []
        for item in items:
            candidates = item.candidates
            if candidates.end_tokens:
                prediction, extra = _gold_row(next(token_log_probs), candidates.end_tokens)
            else:
                prediction = {label: math.fsum(next(token_log_probs)) for label in candidates.labels}
                extra = {
                    "label_tokens": {label: len(ids) for label, ids in zip(candidates.labels, candidates.token_ids)},
                    "scoring": SCORING,
                }
            extra["prompt_tokens"] = len(item.sample)
            predictions.append(Prediction(item.record["id"], prediction, seconds, extra))
        return predictions

    def predict(self, records: Sequence[dict[str, Any]]) -> Iterator[list[Prediction]]:
        """Batches in `HFGenerator.batches` order; the next batch's media load while this one is scored."""
        batches = self.hf.batches(records)
        prepared = _one_ahead(self.prepare, batches) if self.prefetch else map(self.prepare, batches)
        for items, encode_seconds in prepared:
            yield self.score_batch(items, encode_seconds)


def _gold_row(token_log_probs: list[float], end_tokens: int) -> tuple[dict[str, float], dict[str, Any]]:
    """{"nll", "log_perplexity"} of a gold continuation's token log-probs (the last `end_tokens` end the turn)."""
    answer = token_log_probs[:-end_tokens]
    log_perplexity = -math.fsum(answer)
    nll = log_perplexity - math.fsum(token_log_probs[-end_tokens:])
    extra = {"answer_tokens": len(answer), "end_tokens": end_tokens, "scoring": GOLD_SCORING}
    return {"nll": nll, "log_perplexity": log_perplexity}, extra


# ---------------------------------------------------------------------------------------------------- reading


def _is_score(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _gold_problem(row: dict[str, Any]) -> str | None:
    """What is wrong with a gold_likelihood row: NLLs are numbers >= 0 (inf allowed, NaN not), nll >= log-perplexity."""
    values = row["prediction"]
    if not isinstance(values, dict) or sorted(values) != sorted(GOLD_KEYS):
        return f"the prediction is not a {{{', '.join(GOLD_KEYS)}}} object"
    bad = [
        key
        for key, value in values.items()
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value) or value < 0
    ]
    if bad:
        return f"{bad} must be numbers >= 0 (inf for a token of probability 0)"
    if values["log_perplexity"] > values["nll"]:
        return "log_perplexity is above nll (nll adds the end-of-turn token to it)"
    tokens = row.get("answer_tokens")
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        return f"answer_tokens must be a whole number >= 1, got {tokens!r}"
    return None


def _row_problem(row: dict[str, Any]) -> str | None:
    if row.get("scoring") == GOLD_SCORING:
        return _gold_problem(row)
    if row.get("scoring") != SCORING:
        return f"not a {SCORING} or {GOLD_SCORING} row (scoring: {row.get('scoring')!r})"
    scores = row["prediction"]
    if not isinstance(scores, dict) or not scores:
        return "the prediction is not a {label: score} object"
    bad = [label for label, value in scores.items() if not _is_score(value)]
    return f"non-numeric or non-finite scores for {bad[:5]}" if bad else None


def _line_of(path: Path, item_id: str) -> int:
    with open(path, "rb") as f:
        return next(n for n, line in enumerate(f, start=1) if line.strip() and json.loads(line)["id"] == item_id)


def read_label_scores(path: str | Path) -> dict[str, dict[str, float]]:
    """id -> {label: score} of a label-likelihood file, and for a gold row id -> {"nll", "log_perplexity"}. A row
    that is neither (a generation file's text, a non-finite label score, a negative or NaN NLL) is an error naming
    the file and line; a truncated last line is ignored, as when resuming."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no label-score file")
    scores = {}
    for item_id, row in read_predictions(path).rows.items():
        problem = _row_problem(row)
        if problem is not None:
            raise PredictionFileError(f"{path}:{_line_of(path, item_id)}: {problem}")
        scores[item_id] = {label: float(value) for label, value in row["prediction"].items()}
    return scores


# -------------------------------------------------------------------------------------------------------- CLI


def select_records(
    records: Sequence[dict[str, Any]], target_types: Sequence[str], limit: int | None = None
) -> list[dict[str, Any]]:
    """Records of the given target types, the first `limit` of each dataset (file order)."""
    kept: list[dict[str, Any]] = []
    per_dataset: Counter = Counter()
    for record in records:
        if record["target_type"] in target_types and (limit is None or per_dataset[record["dataset"]] < limit):
            per_dataset[record["dataset"]] += 1
            kept.append(record)
    return kept


def build_parser() -> argparse.ArgumentParser:
    from mmaff.eval.cli_common import HelpFormatter, add_comma_list

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint folder / Hub id")
    parser.add_argument("--corpus", default="data/mmaffin", help="a built corpus folder (or a Hub dataset id)")
    parser.add_argument("--split", default="test", help="corpus split")
    parser.add_argument("--out", required=True, help="label-score file (JSON lines; resumed if it exists)")
    add_comma_list(parser, "--datasets", "only these corpus datasets (a,b or a b; default: all)")
    add_comma_list(parser, "--tasks", "only these tasks, <dataset>/<subtask> (default: all)")
    add_comma_list(parser, "--modalities", "only these modalities (default: all)", allowed=("text", "image", "video"))
    add_comma_list(
        parser,
        "--target-types",
        "target types scored (default: multi,open): multi / single get one likelihood per label (ranking metrics), "
        "open (MASIVE) the NLL and log-perplexity of the gold answer",
        allowed=TARGET_TYPES,
        default=None,
    )
    parser.add_argument("--limit", type=int, help="at most N records per dataset (smoke runs)")
    parser.add_argument("--batch-size", type=int, default=8, help="records per prompt forward")
    parser.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS, help="candidates per forward")
    parser.add_argument("--method", choices=METHODS, default="prefix", help="prefix sharing, or full (reference)")
    parser.add_argument("--dtype", default="auto", help="model dtype (auto, bfloat16, float32, ...)")
    parser.add_argument("--decoder", default="auto", help="video decoder: auto, torchcodec, decord, pyav")
    parser.add_argument(
        "--max-prompt-tokens",
        type=int,
        default=DEFAULT_MAX_PROMPT_TOKENS,
        help="longer prompts are counted and logged, never cut",
    )
    return parser


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    args.target_types = args.target_types or ["multi", "open"]
    return args


def main(argv: Sequence[str] | None = None) -> GenerateReport:
    from mmaff.eval.cli_common import open_selection

    args = _parse_args(argv)
    corpus, records = open_selection(
        args, model_is_path=True, keep=lambda record: record["target_type"] in args.target_types
    )
    scorer = LabelScorer(
        args.model,
        corpus.root,
        corpus.budget,
        batch_size=args.batch_size,
        dtype=args.dtype,
        decoder=args.decoder,
        max_prompt_tokens=args.max_prompt_tokens,
        method=args.method,
        max_rows=args.max_rows,
    )
    run = run_description(args, scorer, corpus.root, argv, module="mmaff.likelihood")
    report = run_data_parallel(records, scorer, args.out, run)
    print(json.dumps(report.as_dict()))
    return report


if __name__ == "__main__":
    from mmaff.eval.cli_common import run_cli

    run_cli(main)
