"""SMP2020-EWECT (Weibo emotion classification): two subsets, `usual` and `virus`, three files each.

Files: `<subset>_train.txt`, `<subset>_eval_labeled.txt`, `<subset>_test_labeled.txt`. Each is ONE single-line
JSON array of `{"id": int, "content": str, "label": str}` (ensure_ascii=False); ids restart at 1 per file, so
the source id is `<source split>-<id>` (e.g. `eval-17`), unique within a subset. Labels are adjectives
(happy/angry/sad) mapped to the ewect6 nouns. Official splits: train / eval (= validation) / test.
Warts: `usual_train.txt` is missing from most mirrors (any non-empty subset of the six files is accepted);
texts keep `[表情]` emoji codes, `//@user:` repost chains and `?` mojibake as published.
Rejects: truncated array tail (truncated_json), a corrupt item (bad_json: only that item; reading resumes at
the next one; the detail gives its line and column), non-object items or missing keys / non-int id / non-string
content (bad_json_item), unknown label (label_not_in_label_set), empty content (empty_text); duplicate ids and
train texts also in eval/test are rejected by the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mmaff.data.builder import BuildContext, Example, Reject, clean_text, excerpt, read_json_array

SUBSETS = ("usual", "virus")
SOURCE_FILES = {"train": "{}_train.txt", "eval": "{}_eval_labeled.txt", "test": "{}_test_labeled.txt"}
LABELS = {"happy": "happiness", "angry": "anger", "sad": "sadness", "fear": "fear", "surprise": "surprise",
          "neutral": "neutral"}  # fmt: skip


def _item_problem(item: dict) -> str | None:
    """Why an array item cannot be used (None if it can)."""
    missing = [k for k in ("id", "content", "label") if k not in item]
    if missing:
        return f"missing keys {missing}"
    if not isinstance(item["id"], int) or isinstance(item["id"], bool):
        return f"id {item['id']!r} is not an integer"
    if not isinstance(item["content"], str):
        return f"content {item['content']!r} is not a string"
    return None


def _file_items(ctx: BuildContext, path: Path, subset: str, source_split: str) -> Iterator[Example | Reject]:
    rel = ctx.track(path)
    split = ctx.spec.splits["map"][source_split]
    for entry in read_json_array(path, rel):
        if isinstance(entry, Reject):
            yield entry
            continue
        number, item = entry
        problem = _item_problem(item)
        if problem:
            yield Reject(rel, number, "bad_json_item", excerpt(item), problem)
            continue
        if not isinstance(item["label"], str) or item["label"] not in LABELS:
            yield Reject(rel, number, "label_not_in_label_set", excerpt(item), f"label {item['label']!r}")
            continue
        text = clean_text(item["content"])
        if not text:
            yield Reject(rel, number, "empty_text", excerpt(item))
            continue
        yield Example(
            source_id=f"{source_split}-{item['id']}",
            subtask="EC",
            language="zh",
            gold=LABELS[item["label"]],
            file=rel,
            line=number,
            text=text,
            split=split,
            subset=subset,
        )


def build(ctx: BuildContext) -> Iterator[Example | Reject]:
    names = [pattern.format(subset) for subset in SUBSETS for pattern in SOURCE_FILES.values()]
    present = set(ctx.find(*names))  # MissingData if none of the six files is there
    for subset in SUBSETS:
        for source_split, pattern in SOURCE_FILES.items():
            path = ctx.raw_dir / pattern.format(subset)
            if path in present:
                yield from _file_items(ctx, path, subset, source_split)
