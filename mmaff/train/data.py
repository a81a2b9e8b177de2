"""Training samples from a built corpus: mixture weights, over-length accounting, token packing.

Items handed to the DataLoader are lists of corpus records (one record, or a pack of several); the collator
(`mmaff.train.collator`) turns them into model inputs inside the DataLoader workers. Records are addressed by
their row in the Arrow-backed split, so a large corpus is memory-mapped, not held as Python objects.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mmaff.data.records import hash64
from mmaff.encode.corpus import RECORD_COLUMNS, Corpus, CorpusError, features, load_corpus
from mmaff.train.args import DataArguments

if TYPE_CHECKING:  # imported where used: `pack` must import without `datasets` (benchmarks/gpu_check.py)
    import datasets

log = logging.getLogger(__name__)


def _copies(record_id: str, weight: float, seed: int) -> int:
    """Copies of a record under `weight`: the integer part always, one more for a seeded fraction of records."""
    whole, fraction = int(weight), weight - int(weight)
    return whole + (hash64(f"{seed}:{record_id}") / 2**64 < fraction)


def mixture_indices(table: datasets.Dataset, weights: dict[str, float], caps: dict[str, int], seed: int) -> list[int]:
    """Row indices of the weighted mixture, in a seeded order (a row repeats when its weight exceeds 1)."""
    per_dataset: dict[str, list[tuple[int, int]]] = {}
    for row, (record_id, name) in enumerate(zip(table["id"], table["dataset"])):
        for copy in range(_copies(record_id, weights.get(name, 0.0), seed)):
            per_dataset.setdefault(name, []).append((hash64(f"{seed}:{copy}:{record_id}"), row))
    chosen: list[tuple[int, int]] = []
    for name, keyed in per_dataset.items():
        keyed.sort()
        chosen.extend(keyed[: caps.get(name)] if name in caps else keyed)
    chosen.sort()
    return [row for _, row in chosen]


def load_split(corpus: Corpus, split: str, args: DataArguments, *, weighted: bool) -> datasets.Dataset:
    """One split of the corpus, filtered by modality and (for training) weighted by the mixture."""
    split_dir = corpus.root / split
    if not split_dir.is_dir():
        raise CorpusError(f"{corpus.root}: no {split!r} split")
    weights = dict(corpus.weights)
    if args.dataset_mixture:
        unknown = sorted(set(args.dataset_mixture) - set(weights))
        if unknown:
            raise CorpusError(f"dataset_mixture names datasets not in the corpus: {unknown} (has {sorted(weights)})")
        weights = {name: float(args.dataset_mixture.get(name, 0.0)) for name in weights}
    wanted = [name for name, weight in weights.items() if weight > 0] if weighted else None
    table = load_corpus(corpus.root, split=split, datasets_filter=wanted).select_columns(RECORD_COLUMNS)
    if args.modalities:
        table = table.filter(lambda modality: modality in args.modalities, input_columns="modality")
    if weighted:
        table = table.select(mixture_indices(table, weights, args.dataset_caps or {}, args.mixture_seed))
    return table


@dataclass
class LengthReport:
    """What the token cutoff did: samples kept, and the ids of those dropped for being longer than it."""

    max_length: int | None
    kept: int = 0
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_length": self.max_length,
            "kept": self.kept,
            "dropped": len(self.dropped),
            "dropped_samples": self.dropped,
        }


def keep_fitting(
    lengths: list[int], table: datasets.Dataset, max_length: int | None
) -> tuple[list[int], LengthReport]:
    """Rows whose full sample fits `max_length`. A longer one is dropped whole and reported: cutting it would
    cut through its answer or, worse, through a run of visual tokens (features/tokens mismatch)."""
    report = LengthReport(max_length)
    keep = []
    for row, length in enumerate(lengths):
        if max_length is None or length <= max_length:
            keep.append(row)
        else:
            report.dropped.append({"id": table[row]["id"], "tokens": length})
    report.kept = len(keep)
    return keep, report


def pack(lengths: list[int], budget: int) -> list[list[int]]:
    """Best-fit-decreasing bin packing of sample positions into packs of at most `budget` tokens.

    Deterministic: ties break on position. The packs are returned in the order of their first (longest) member,
    so the Trainer's seeded sampler decides the training order."""
    if any(length > budget for length in lengths):
        raise ValueError("a sample is longer than the pack budget; drop over-long samples first")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    packs: list[list[int]] = []
    free: list[int] = []  # free tokens per pack
    by_free: list[tuple[int, int]] = []  # (free, pack index)
    for i in order:
        need = lengths[i]
        at = bisect.bisect_left(by_free, (need, -1))
        if at < len(by_free):
            room, p = by_free.pop(at)
            packs[p].append(i)
            free[p] = room - need
            bisect.insort(by_free, (free[p], p))
        else:
            packs.append([i])
            free.append(budget - need)
            bisect.insort(by_free, (free[-1], len(packs) - 1))
    return packs


def packed_dataset(table: datasets.Dataset, packs: list[list[int]]) -> datasets.Dataset:
    """A dataset whose item `i` is `{"records": [...]}`, the records of pack `i` (one record when not packing).

    Only the row numbers are stored; records are read from the memory-mapped table when an item is fetched."""

    def fetch(batch: dict[str, list[list[int]]]) -> dict[str, list[list[dict[str, Any]]]]:
        return {"records": [[table[row] for row in pack] for pack in batch["pack"]]}

    import datasets

    return datasets.Dataset.from_dict({"pack": packs}).with_transform(fetch)


def samples_per_item(items: datasets.Dataset | datasets.IterableDataset) -> float:
    import datasets

    if isinstance(items, datasets.Dataset) and "pack" in items.column_names and len(items):
        packs = items.with_format(None)["pack"]
        return sum(len(p) for p in packs) / len(packs)
    return 1.0


def streamed_records(corpus: Corpus, split: str, args: DataArguments) -> datasets.IterableDataset:
    """The corpus streamed from its JSONL files, datasets interleaved by weight x size, items `{"records": [r]}`.

    Items stay raw records so that, when accelerate shards the stream across ranks, each rank encodes (decodes
    media, tokenizes) only its own share."""
    import datasets

    weights = dict(corpus.weights)
    if args.dataset_mixture:
        weights = {name: float(args.dataset_mixture.get(name, 0.0)) for name in weights}
    streams, mass = [], []
    for name, weight in sorted(weights.items()):
        files = sorted(str(p) for p in (corpus.root / split).glob(f"{name}*.jsonl"))
        if weight <= 0 or not files:
            continue
        stream = datasets.load_dataset("json", data_files=files, features=features(), split="train", streaming=True)
        streams.append(stream.select_columns(RECORD_COLUMNS))
        mass.append(weight * max(corpus.split_size(name, split), 1))
    if not streams:
        raise CorpusError(f"{corpus.root}: nothing to stream from {split!r} under the mixture")
    mixed = datasets.interleave_datasets(
        streams, probabilities=[m / sum(mass) for m in mass], seed=args.mixture_seed, stopping_strategy="all_exhausted"
    )
    if args.modalities:
        mixed = mixed.filter(lambda modality: modality in args.modalities, input_columns="modality")
    return mixed.shuffle(seed=args.mixture_seed, buffer_size=1024)
