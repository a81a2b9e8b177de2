"""XED (github.com/Helsinki-NLP/XED): movie-subtitle lines with Plutchik emotions, en/fi annotated + projections.

Raw layout under <raw_root>/xed (subset in brackets; language = the file-name prefix, XED's own codes such
as br, cn, tw are kept):
  AnnotatedData/<lang>-annotated.tsv   [annotated]   `sentence<TAB>labels`, CRLF
  AnnotatedData/neu_<lang>.txt         [neutral]     neu_en: `9<TAB>sentence` (label first, neutral coded 9);
                                                     neu_fi: `id<TAB>sentence<TAB>2<TAB>line no.<TAB>OPUS file`
  Projections/<lang>-projections.tsv   [projections] `sentence<TAB>labels`; tr-projections2.tsv alone has a
                                                     `phrase<TAB>emotion` header (skipped, not a row)
Labels are a comma+space list of XED's alphabetical ids 1 anger ... 8 trust, mapped to names (the registry
label set xed8 renumbers them for prompts); neutral lines get gold []. In a neutral file a 2-column line is
read label-first and a 5-column line in neu_fi's layout, whatever the file; the neutral code must be an
integer. neu_en's 5-column lines are empty (`\\t\\t\\t\\t`) and end up as blank_line rejects.
Warts: sentences holding quotes are CSV-quoted (`"say ""hi"" now"`) and are unquoted; tr-projections.tsv is an
older copy of tr-projections2.tsv (labels written as Python sets) and is skipped when both exist;
en-projections.tsv has ~1,100 six-column OPUS alignment lines and single-column lines mixed in.
No source ids: source_id = "<lang>-" + first 16 hex of sha1(cleaned sentence), so the same line twice in a
subset is a duplicate_id reject (pipeline). No official splits: seeded per language by the pipeline.
Rejects: blank_line, opus_alignment_line (first field an OPUS `xx/year/id/id.xml.gz` path), bad_column_count,
bad_label (not a comma list of 1..8 / not an integer neutral code), empty_text, missing_text (the sentence
is pandas' `nan`), unknown_language (prefix not in the registry list), undecodable_bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from mmaff.data.builder import BuildContext, Example, Reject, clean_text, content_id, excerpt, read_lines

XED_IDS = {1: "anger", 2: "anticipation", 3: "disgust", 4: "fear", 5: "joy", 6: "sadness", 7: "surprise", 8: "trust"}
_LABELS = re.compile(r"^[1-8](?:\s*,\s*[1-8])*$")
_SET_LABELS = re.compile(r"^\{'[1-8]'(?:, '[1-8]')*\}$")  # tr-projections.tsv: {'6', '2', '1'}
_OPUS_PATH = re.compile(r"^[a-z]{2,3}(?:_[a-z]+)?/\d+/\d+/\d+\.xml\.gz$")
_HEADER = ["phrase", "emotion"]
Items = Iterator[Example | Reject]


def _unquote(field: str) -> str:
    """Undo CSV quoting of a whole field: `"a ""b"" c"` -> `a "b" c`."""
    field = field.strip()
    inner = field[1:-1]
    if len(field) >= 2 and field[0] == field[-1] == '"' and '"' not in inner.replace('""', ""):
        return inner.replace('""', '"')
    return field


def _labels(raw: str) -> set[int] | None:
    raw = raw.strip()
    if _SET_LABELS.match(raw):
        raw = raw[1:-1].replace("'", "")
    return {int(x) for x in raw.split(",")} if _LABELS.match(raw) else None


def _inputs(ctx: BuildContext) -> list[tuple[Path, str, str]]:
    """(path, subset, language) for every input file, in a fixed order."""
    # MissingData if there is no input at all
    ctx.find("AnnotatedData/*-annotated.tsv", "AnnotatedData/neu_*.txt", "Projections/*-projections*.tsv")
    files = [(p, "annotated", p.name.split("-")[0]) for p in ctx.find("AnnotatedData/*-annotated.tsv", required=False)]
    files += [(p, "neutral", p.stem.removeprefix("neu_")) for p in ctx.find("AnnotatedData/neu_*.txt", required=False)]
    projections = ctx.find("Projections/*-projections.tsv", "Projections/*-projections2.tsv", required=False)
    names = {p.name for p in projections}
    for p in projections:
        if not (p.name.endswith("-projections.tsv") and p.name.replace(".tsv", "2.tsv") in names):
            files.append((p, "projections", p.name.split("-")[0]))
    return files


def _parse(fields: list[str], subset: str) -> tuple[str, set[int] | None, dict[str, str]] | str:
    """(raw sentence, label ids (empty for neutral; None if bad), meta) or a reject reason."""
    if subset != "neutral":
        if _OPUS_PATH.match(fields[0].strip()):
            return "opus_alignment_line"
        if len(fields) != 2:
            return "bad_column_count"
        return fields[0], _labels(fields[1]), {}
    if len(fields) == 2:
        code, sentence, meta = fields[0], fields[1], {}
    elif len(fields) == 5:
        code, sentence = fields[2], fields[1]
        meta = {"xed_id": fields[0].strip(), "opus_line": fields[3].strip(), "opus_file": fields[4].strip()}
    else:
        return "bad_column_count"
    return sentence, (set() if code.strip().isdigit() else None), meta


def _file_items(ctx: BuildContext, path: Path, subset: str, language: str, order: list[str]) -> Items:
    rel = ctx.track(path)
    for item in read_lines(path, rel):
        if isinstance(item, Reject):
            yield item
            continue
        line, raw = item
        fields = raw.split("\t")
        if line == 1 and [f.strip() for f in fields] == _HEADER:
            continue  # tr-projections2.tsv header: not a data row
        parsed = _parse(fields, subset) if raw.strip() else "blank_line"
        if isinstance(parsed, str):
            yield Reject(rel, line, parsed, excerpt(raw), f"{len(fields)} columns")
            continue
        sentence, ids, meta = parsed
        text = clean_text(_unquote(sentence))
        checks = {"unknown_language": language not in ctx.spec.languages, "bad_label": ids is None,
                  "empty_text": not text, "missing_text": text == "nan"}  # fmt: skip
        reason = next((r for r, failed in checks.items() if failed), None)
        if reason:
            yield Reject(rel, line, reason, excerpt(raw))
            continue
        names = {XED_IDS[i] for i in ids}
        gold = [name for name in order if name in names]
        source_id = f"{language}-{content_id(text)}"
        yield Example(source_id, "EC", language, gold, rel, line, text=text, subset=subset, meta=meta)


def build(ctx: BuildContext) -> Items:
    order = list(ctx.spec.subtasks["EC"].label_set.labels)
    assert set(XED_IDS.values()) == set(order), f"registry xed8 labels {order} do not match XED's"
    for path, subset, language in _inputs(ctx):
        yield from _file_items(ctx, path, subset, language, order)
