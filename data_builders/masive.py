"""MASIVE (Deas et al., EMNLP 2024; NickDeas/MASIVE, Google Drive masive.tar.gz): masked affective states.

Layout: `<raw_root>/masive/{en,es}/{train,val,test}.csv`; the `_sub_k`/`_trans` variants are ignored unless
option `file_suffix` names one (e.g. "_trans" reads `train_trans.csv`). The CSV is not public, so this reader
assumes only what the authors' code uses: a header row naming at least `id`, `t5_trg` and the text column of
option `text_field`; other columns (e.g. a pandas index) are ignored.
Text: option `text_field`, default `clip_input`, the context the authors train and evaluate on
(`input_col: clip_input` in every config of code/configs/, `--input-col` default of code/masive_eval.py);
`text_field: input` takes the full post instead (the mixture's `options:` of `masive`). A CSV without the chosen
column is an error naming the file, the column and that option.
`input` is a Reddit post whose affective-state words were replaced by T5 sentinels `<extra_id_0>`,
`<extra_id_1>`, ...; `t5_trg` is the T5 span target `<extra_id_0> term0 <extra_id_1> term1 [<extra_id_2>]`
(closing sentinel optional; `</s>`/`<pad>` tokens are dropped). A final sentinel with nothing after it is
taken as the closing one, so a target whose last term is empty reads as one term short (a mismatch).
Record text = input with `<extra_id_N>` -> `[MASK{N+1}]`; gold = the terms in sentinel order, kept verbatim
(Spanish gender forms such as cansada/cansado are distinct answers, as in MASIVE's exact-match scoring).
Official splits (val -> validation); language = folder. Duplicate ids are left to the pipeline (MASIVE
de-duplicates on id).
Rejects: bad_column_count / undecodable_bytes / blank_line (reader), missing_id, empty_text,
mask_target_mismatch (no sentinel in the input, text before the first target sentinel, or input and
target sentinels differ), empty_target (an empty term), duplicate_id (pipeline).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from mmaff.data.builder import (
    BuildContext,
    Example,
    MissingData,
    RawFormatError,
    Reject,
    clean_text,
    excerpt,
    read_csv,
)

SENTINEL = re.compile(r"<extra_id_(\d+)>")
_SPECIAL = re.compile(r"</s>|<pad>")


TEXT_FIELD_FIX = {
    "clip_input": "the clipped context (text_field: clip_input, the default) is not in this file; to use the full "
    "post set `options: {text_field: input}` under `masive:` in the mixture YAML",
    "input": "the full post (text_field: input) is not in this file; drop the option to use clip_input",
}


def _columns(path: Path, rel: str, needed: tuple[str, ...], text_field: str) -> list[str]:
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        header = [c.strip() for c in next(csv.reader(f), [])]
    missing = [c for c in (*needed, text_field) if c not in header]
    if missing:
        fix = f"; {TEXT_FIELD_FIX[text_field]}" if text_field in missing and text_field in TEXT_FIELD_FIX else ""
        raise RawFormatError(rel, 1, f"header {header} lacks columns {missing}{fix}")
    return header


def parse_target(target: str) -> tuple[list[int], list[str]] | None:
    """`<extra_id_0> a <extra_id_1> b <extra_id_2>` -> ([0, 1], ["a", "b"]); None if text precedes the first sentinel."""
    parts = SENTINEL.split(_SPECIAL.sub(" ", target))
    if parts[0].strip():
        return None
    ids, terms = [int(n) for n in parts[1::2]], [t.strip() for t in parts[2::2]]
    if len(terms) > 1 and not terms[-1]:  # closing sentinel
        ids, terms = ids[:-1], terms[:-1]
    return ids, terms


def _example(row: dict[str, str], text_field: str, rel: str, line: int, lang: str, split: str) -> Example | Reject:
    text, source_id = clean_text(row[text_field]), row["id"].strip()
    if not source_id:
        return Reject(rel, line, "missing_id", excerpt(text))
    if not text:
        return Reject(rel, line, "empty_text", excerpt(row["t5_trg"]))
    parsed = parse_target(row["t5_trg"])
    masks = [int(n) for n in SENTINEL.findall(text)]
    if parsed is None or not masks or masks != parsed[0]:
        return Reject(
            rel, line, "mask_target_mismatch", excerpt(text), f"input masks {masks}, target {row['t5_trg']!r}"
        )
    if not all(parsed[1]):
        return Reject(rel, line, "empty_target", excerpt(row["t5_trg"]))
    text = SENTINEL.sub(lambda m: f"[MASK{int(m.group(1)) + 1}]", text)
    return Example(
        source_id=source_id, subtask="ASI", language=lang, gold=parsed[1], file=rel, line=line, text=text, split=split
    )


def build(ctx: BuildContext) -> Iterator[Example | Reject]:
    text_field = ctx.options.get("text_field", "clip_input")
    suffix = ctx.options.get("file_suffix", "")
    split_map = ctx.spec.splits["map"]
    files = [
        (lang, split, path)
        for lang in ctx.spec.languages
        for split in split_map
        for path in ctx.find(f"{lang}/{split}{suffix}.csv", required=False)
    ]
    if not files:
        raise MissingData(f"{ctx.raw_dir}: no {{{','.join(ctx.spec.languages)}}}/<split>{suffix}.csv file")
    for lang, split, path in files:
        rel = ctx.track(path)
        header = _columns(path, rel, ("id", "t5_trg"), text_field)
        for item in read_csv(path, rel, header=None, columns=len(header), multiline=True):
            if isinstance(item, Reject):
                yield item
            elif item[0] != 1:
                yield _example(
                    dict(zip(header, item[1], strict=True)), text_field, rel, item[0], lang, split_map[split]
                )
