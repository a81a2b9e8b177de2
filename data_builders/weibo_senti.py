"""weibo_senti_100k (SophonPlus/ChineseNlpCorpus): 119,988 Weibo posts labelled positive / negative.

Layout: `weibo_senti_100k.csv` (distributed via a Baidu-pan link only). UTF-8 CSV, header `label,review`,
label 1 = positive, 0 = negative; reviews with commas, quotes or newlines are double-quoted with `""` escaping.
Warts: the first review begins with U+FEFF (after the header line); the file is sorted by label (all
positives first), so only a seeded split makes sense; texts keep `[哈哈]` emoji codes, `//@user:` repost
chains and `?` placeholders as published. No source ids: the id is a content hash (sha1 of label, review).
Rejects: unbalanced_quote (a stray quote: a quoted review whose later lines look like whole rows), bad column count, empty review (empty_text), label not 0/1 (bad_label); the pipeline rejects exact
duplicate rows (duplicate_id) and repeated texts (duplicate_text).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from mmaff.data.builder import BuildContext, Example, Reject, clean_text, content_id, excerpt, read_csv

CSV_NAME = "weibo_senti_100k.csv"
HEADER = ["label", "review"]
POLARITY = {"0": "negative", "1": "positive"}
# a whole unquoted row: a line of a multi-line review that looks like this is a row swallowed by a stray quote
WHOLE_ROW = re.compile(r'\ufeff?\s*[01]\s*,[^"]*')


def build(ctx: BuildContext) -> Iterator[Example | Reject]:
    (path,) = ctx.find(CSV_NAME)
    rel = ctx.track(path)
    for item in read_csv(path, rel, HEADER, multiline=True, row_pattern=WHOLE_ROW):
        if isinstance(item, Reject):
            yield item
            continue
        line, (raw_label, raw_review) = item
        label, review = clean_text(raw_label), clean_text(raw_review)
        if label not in POLARITY:
            yield Reject(rel, line, "bad_label", excerpt(raw_label), f"label {raw_label!r} is not 0 or 1")
            continue
        if not review:
            yield Reject(rel, line, "empty_text", excerpt(",".join(item[1])))
            continue
        yield Example(
            source_id=content_id(label, review),
            subtask="SP",
            language="zh",
            gold=POLARITY[label],
            file=rel,
            line=line,
            text=review,
        )
