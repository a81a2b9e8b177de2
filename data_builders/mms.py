"""MMS, Massively Multilingual Sentiment (Hub Brand24/mms): one `train` split, ~6.2M rows, 27 languages.

Raw layout under <raw_root>/mms, first match wins:
  * parquet files anywhere below (the Hub layout `data/train-00000-of-000NN.parquet`), read in sorted order;
  * a `datasets.save_to_disk` folder: `data-0000N-of-0000M.arrow` (Arrow IPC stream) + dataset_info/state.json;
  * nothing local: with option `hub_id` set and HF_HUB_OFFLINE != "1" the Hub copy is streamed with
    `datasets.load_dataset(hub_id, split="train", streaming=True)`; otherwise MissingData says how to get it.
Files are read in record batches, only the needed columns, so memory stays flat. Columns: `_id` (int32, the
source id), `text`, `label` (ClassLabel 0 negative / 1 neutral / 2 positive; registry polarity3 shows them as
-1/0/1), `language` (ISO code); `original_dataset`, `domain` and `cleanlab_self_confidence` are kept in
source meta. Typology columns (`Family`, `Genus`, ...) are not read. A ClassLabel name list in the
Arrow schema metadata must read negative, neutral, positive, else the file is refused (RawFormatError).
`line` is the 1-based row index within the file (the row number of the streamed Hub split for the Hub).
No official splits: seeded per language by the pipeline.
Rejects: unknown_language (not in the registry list), label_not_in_label_set (label missing or outside 0..2),
empty_text, low_label_confidence (only with option `min_cleanlab_confidence`: self-confidence missing or
below it). Duplicate ids / texts are rejected by the pipeline.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mmaff.data.builder import BuildContext, Example, MissingData, RawFormatError, Reject, clean_text, excerpt

LABELS = ("negative", "neutral", "positive")  # ClassLabel order of the source
REQUIRED = ("_id", "text", "label", "language")
OPTIONAL = ("original_dataset", "domain", "cleanlab_self_confidence")
BATCH_ROWS = 65_536
Rows = Iterator[dict[str, Any]]


def _columns(schema: pa.Schema, rel: str) -> list[str]:
    missing = [c for c in REQUIRED if c not in schema.names]
    if missing:
        raise RawFormatError(rel, None, f"missing columns {missing}; found {schema.names}")
    info = json.loads((schema.metadata or {}).get(b"huggingface", b"{}"))
    names = info.get("info", {}).get("features", {}).get("label", {}).get("names")
    if names is not None and tuple(n.lower() for n in names) != LABELS:
        raise RawFormatError(rel, None, f"label names {names}, expected {list(LABELS)}")
    return [c for c in (*REQUIRED, *OPTIONAL) if c in schema.names]


def _batch_rows(batches: Iterable[pa.RecordBatch], columns: list[str]) -> Rows:
    for batch in batches:
        yield from batch.select(columns).to_pylist()


def _parquet_rows(path: Path, rel: str) -> Rows:
    parquet = pq.ParquetFile(path)
    columns = _columns(parquet.schema_arrow, rel)
    yield from _batch_rows(parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns), columns)


def _arrow_rows(path: Path, rel: str) -> Rows:
    with pa.memory_map(str(path)) as source:
        try:
            reader = pa.ipc.open_stream(source)
            batches: Iterable[pa.RecordBatch] = reader
        except pa.ArrowInvalid:  # Arrow IPC file format (older caches)
            reader = pa.ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        yield from _batch_rows(batches, _columns(reader.schema, rel))


def _readable(rows: Rows, rel: str, kind: str) -> Rows:
    """The rows of a local file; a file that cannot be decoded (zero bytes, truncated, not parquet/Arrow, a corrupt
    page) is a RawFormatError naming it and, past the first row, the row where reading stopped."""
    read = 0
    try:
        for row in rows:
            yield row
            read += 1
    except RawFormatError:
        raise
    except (pa.ArrowException, OSError, ValueError, EOFError) as err:
        raise RawFormatError(rel, read + 1 if read else None, f"not a readable {kind} file ({err})") from err


def _sources(ctx: BuildContext) -> Iterator[tuple[str, Rows]]:
    """(file name, rows) for each input: local parquet, else local .arrow, else the Hub stream."""
    for pattern, reader, kind in (("**/*.parquet", _parquet_rows, "parquet"), ("**/*.arrow", _arrow_rows, "Arrow")):
        paths = ctx.find(pattern, required=False)
        if paths:
            for path in paths:
                rel = ctx.track(path)
                yield rel, _readable(reader(path, rel), rel, kind)
            return
    hub_id = ctx.options.get("hub_id")
    if not hub_id or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise MissingData(
            f"{ctx.raw_dir}: no *.parquet or *.arrow files. Download the Hub dataset, e.g. "
            f"`hf download {hub_id or 'Brand24/mms'} --repo-type dataset --local-dir {ctx.raw_dir}`, "
            "or unset HF_HUB_OFFLINE to stream it"
        )
    import datasets  # only needed for the Hub fallback

    yield f"hf://datasets/{hub_id}", iter(datasets.load_dataset(hub_id, split="train", streaming=True))


def _item(ctx: BuildContext, rel: str, line: int, row: dict[str, Any], min_conf: float | None) -> Example | Reject:
    language = str(row.get("language") or "").strip().lower()
    if language not in ctx.spec.languages:
        return Reject(rel, line, "unknown_language", excerpt(language), f"language {row.get('language')!r}")
    label = row.get("label")
    if type(label) is not int or not 0 <= label < len(LABELS):
        return Reject(rel, line, "label_not_in_label_set", excerpt(str(label)), "expected 0, 1 or 2")
    text = clean_text(row.get("text") or "")
    if not text:
        return Reject(rel, line, "empty_text", excerpt(str(row.get("_id"))))
    confidence = row.get("cleanlab_self_confidence")
    confidence = None if confidence is None else round(float(confidence), 6)  # float32 in the source: 0.9 != 0.9
    if min_conf is not None and (confidence is None or confidence < min_conf):
        return Reject(rel, line, "low_label_confidence", excerpt(text), f"self-confidence {confidence} < {min_conf}")
    meta = {k: row[k] for k in OPTIONAL if row.get(k) is not None}
    if confidence is not None:
        meta["cleanlab_self_confidence"] = confidence
    return Example(str(row["_id"]), "SP", language, LABELS[label], rel, line, text=text, meta=meta)


def build(ctx: BuildContext) -> Iterator[Example | Reject]:
    min_conf = ctx.options.get("min_cleanlab_confidence")
    for rel, rows in _sources(ctx):
        for line, row in enumerate(rows, start=1):
            if min_conf is not None and line == 1 and "cleanlab_self_confidence" not in row:
                raise RawFormatError(rel, None, "min_cleanlab_confidence is set but the data has no such column")
            yield _item(ctx, rel, line, row, min_conf)
