"""Duplicate detection keeps the combining marks that spell words: distinct Thai, Devanagari, Bengali, Tamil,
Gurmukhi, Urdu and Arabic words never collide, while case, punctuation, whitespace, emoji and width variants
of one text still do."""

from __future__ import annotations

import json

import pytest
from helpers import build_datasets

from mmaff.data.records import normalise_for_dedup

# per language: (pairs of real, different words that differ only in combining marks,
#                pairs of spellings of one text that must collide)
SCRIPTS = {
    "th": (
        [("กิน", "กัน"), ("เสือ", "เสื้อ"), ("ไก่", "ไก")],  # eat / together; tiger / shirt; chicken / (no tone)
        [("กิน ข้าว!", "กินข้าว"), ("เสื้อ😀", "เสื้อ")],
    ),
    "hi": (
        [("कम", "काम"), ("दिन", "दान"), ("मिल", "मील")],  # less / work; day / donation; mill / mile
        [("काम है।", "काम है"), ("क\u093c", "\u0958")],  # danda; nukta decomposed vs the precomposed letter
    ),
    "bn": (
        [("কাল", "কল"), ("দিন", "দান")],  # tomorrow / tap; day / gift
        [("কাল আসব।", "কাল আসব")],
    ),
    "ta": (
        [("கல்", "கால்"), ("படம்", "பாடம்")],  # stone / leg; picture / lesson
        [("பாடம், படம்!", "பாடம் படம்")],
    ),
    "pa": (
        [("ਦਿਨ", "ਦਾਨ"), ("ਸਿਰ", "ਸਰ")],  # day / donation; head / lake
        [("ਦਿਨ ਚੰਗਾ ਹੈ।", "ਦਿਨ ਚੰਗਾ ਹੈ")],
    ),
    "ur": (
        [("مُلک", "مَلک")],  # country / angel (harakat written)
        [("مُلک، اچھا؟", "مُلک اچھا")],
    ),
    "ar": (
        [("كَتَبَ", "كُتُب"), ("عَلِمَ", "عَلَّمَ")],  # he wrote / books; he knew / he taught
        [("جميـــل", "جميل"), ("\ufefb", "\u0644\u0627"), ("رائع!! ❤️", "رائع")],  # tatweel; presentation form lam-alef
    ),
}
# any script: case, punctuation, whitespace, emoji (with variation selector and skin tone), NFKC width forms
VARIANTS = [
    ("Great!!  ", "great"),
    ("love it ❤️", "love it"),
    ("👍🏽 nice", "Nice"),
    ("ＡＢＣ１２３", "abc123"),
    ("ｶﾞｷ", "ガキ"),
    ("cafe\u0301", "café"),
    ("ΣΊΣΥΦΟΣ", "σίσυφος"),
    ("zero\u200bwidth", "zerowidth"),
]


@pytest.mark.parametrize("language", sorted(SCRIPTS))
def test_words_that_differ_in_marks_stay_distinct(language):
    distinct, same = SCRIPTS[language]
    for a, b in distinct:
        assert normalise_for_dedup(a) != normalise_for_dedup(b), (language, a, b)
    for a, b in same + VARIANTS:
        assert normalise_for_dedup(a) == normalise_for_dedup(b), (language, a, b)


def test_build_keeps_distinct_words_and_drops_variants(tmp_path):
    """Through a real build (synthetic_emotions JSONL, every row in train with the same label): the distinct
    words are all written, the later spelling of each variant pair is a duplicate_text reject."""
    rows: list[dict[str, str]] = []
    distinct_lines, duplicate_lines = set(), set()

    def add(language: str, text: str) -> int:
        rows.append({"id": f"{language}-{len(rows) + 1}", "text": text, "language": language})
        return len(rows)  # its line in the file

    for language in ("ar", "bn", "hi", "pa", "ta", "ur"):
        distinct, same = SCRIPTS[language]
        for a, b in distinct:
            distinct_lines |= {add(language, a), add(language, b)}
        for a, b in same:
            add(language, a)
            duplicate_lines.add(add(language, b))
    for language, pairs in (("en", VARIANTS[:3] + VARIANTS[5:]), ("ja", VARIANTS[3:5])):
        for a, b in pairs:
            add(language, a)
            duplicate_lines.add(add(language, b))
    raw = tmp_path / "raw" / "synthetic_emotions"
    raw.mkdir(parents=True)
    lines = [json.dumps({**row, "labels": ["joy"], "split": "train"}, ensure_ascii=False) for row in rows]
    (raw / "rows.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    built = build_datasets(tmp_path, {"synthetic_emotions": {}}, raw_root=tmp_path / "raw")
    assert built.rejects_at("synthetic_emotions/rows.jsonl") == dict.fromkeys(
        sorted(duplicate_lines), "duplicate_text"
    )
    written_lines = {r["source"]["line"] for r in built.records.values()}
    assert distinct_lines <= written_lines
