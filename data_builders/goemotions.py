"""GoEmotions (google-research/goemotions/data): headerless TSV `text<TAB>label ids<TAB>comment id`.

Files: train.tsv, dev.tsv, test.tsv and emotions.txt (28 names, no trailing newline; id = line index).
Texts containing quotes are CSV-quoted inside the TSV, so rows are read with a CSV reader. Some mirrors
prepend a `text<TAB>label<TAB>id` header; it is recognised and skipped. Official splits.
Rejects: bad column count, empty text, label id outside emotions.txt, duplicate comment id (pipeline).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from mmaff.data.builder import BuildContext, Example, RawFormatError, Reject, clean_text, excerpt, read_csv

# a whole unquoted row (text, label ids, comment id): a later line of a multi-line text that looks like it
# is a row swallowed by a stray quote
WHOLE_ROW = re.compile(r'[^\t"]*\t[0-9]+(?:,[0-9]+)*\t[A-Za-z0-9_]+')
SPLIT_FILES = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}


def _emotion_names(ctx: BuildContext) -> list[str]:
    (path,) = ctx.find("emotions.txt")
    try:
        names = [n.strip() for n in path.read_text(encoding="utf-8-sig").splitlines() if n.strip()]
    except UnicodeDecodeError as err:
        raise RawFormatError(ctx.track(path), None, f"not UTF-8 ({err})") from err
    expected = list(ctx.spec.subtasks["EC"].label_set.labels)
    if names != expected:
        raise RawFormatError(ctx.track(path), None, f"emotions.txt lists {names}, registry expects {expected}")
    ctx.track(path)
    return names


def build(ctx: BuildContext) -> Iterator[Example | Reject]:
    names = _emotion_names(ctx)
    split_map = ctx.spec.splits["map"]
    for source_split, filename in SPLIT_FILES.items():
        for path in ctx.find(filename, required=source_split == "train"):
            rel = ctx.track(path)
            for item in read_csv(
                path, rel, header=None, delimiter="\t", columns=3, multiline=True, row_pattern=WHOLE_ROW
            ):
                if isinstance(item, Reject):
                    yield item
                    continue
                line, (raw_text, raw_labels, comment_id) = item
                if line == 1 and (raw_text, raw_labels, comment_id) == ("text", "label", "id"):
                    continue  # header some mirrors add; not a data row
                text = clean_text(raw_text)
                try:
                    ids = [int(x) for x in raw_labels.split(",")]
                except ValueError:
                    yield Reject(rel, line, "bad_label", excerpt(raw_labels))
                    continue
                if any(not 0 <= i < len(names) for i in ids):
                    yield Reject(rel, line, "label_not_in_label_set", excerpt(raw_labels))
                    continue
                gold = [names[i] for i in sorted(set(ids))]
                yield Example(
                    source_id=comment_id.strip(),
                    subtask="EC",
                    language="en",
                    gold=gold,
                    file=rel,
                    line=line,
                    text=text,
                    split=split_map[source_split],
                )
