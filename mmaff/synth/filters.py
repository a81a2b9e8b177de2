"""Programmatic quality filters of the synthetic corpus: language, script, length, label-word leakage, duplicates,
and the judge's agreement rule. Each check is one small function; the pipeline counts every rejection by name.

Order (`per_sample_filters`): language -> script -> length -> leakage; then `near_duplicates` over the survivors,
then the optional judge (`judge_agrees`). A check returns None (keep) or a short reason detail.

Language identification uses `py3langid` (langid.py's naive Bayes model, shipped in the wheel, offline), restricted
to the 23 languages of the paper plus neighbours easily confused with them (`CONFUSABLE`), so a text in Catalan,
Farsi, Marathi or Bulgarian is rejected rather than forced onto Spanish, Urdu, Hindi or Russian (Malay is left out:
in short texts it takes a third of Indonesian sentences). Chosen over `lingua-language-detector` 2.1.1 by accuracy
on short texts per script: see BENCHMARKS.md "Synthetic generation: filter cost".

Per-language data (emotion words for the leakage check, expected scripts) is in
`templates/synth/filters/leakage.yaml`; a recipe adds or replaces words per language under `filters:`.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import regex
import yaml

from mmaff.paths import TEMPLATES_DIR

LEAKAGE_FILE = TEMPLATES_DIR / "synth" / "filters" / "leakage.yaml"
LANGUAGES = (
    "ar bn de en es fr hi id it ja ko nl pa pl pt ru sw ta tr uk ur vi zh".split()
)  # the 23 languages of arXiv 2604.12633
CHAR_LANGUAGES = frozenset({"zh", "ja"})  # no spaces between words: length in characters, leakage as substrings
# languages a short text in one of LANGUAGES is easily mistaken for; loaded so such text is rejected, not misfiled
CONFUSABLE = ("ca", "gl", "fa", "mr", "ne", "da", "sv", "cs", "sk", "bg", "be", "ro", "af", "so")

# expected Unicode scripts (Script_Extensions) per language; a letter counts as "in script" if it has any of them
SCRIPTS: dict[str, tuple[str, ...]] = {
    "ar": ("Arabic",),
    "ur": ("Arabic",),
    "bn": ("Bengali",),
    "hi": ("Devanagari",),
    "pa": ("Gurmukhi",),
    "ta": ("Tamil",),
    "ru": ("Cyrillic",),
    "uk": ("Cyrillic",),
    "ko": ("Hangul", "Han"),
    "ja": ("Hiragana", "Katakana", "Han"),
    "zh": ("Han",),
}
LATIN = ("Latin",)  # every other language of LANGUAGES

JUDGE_RULES = ("exact", "superset", "overlap")  # plus "jaccard>=<x>"
LSH_MARGIN = 0.1  # LSH candidates from this much below the Jaccard threshold (near_duplicates)


@dataclass(frozen=True)
class Candidate:
    """One generated sample after parsing."""

    id: str  # deterministic sample id (pipeline)
    language: str  # ISO 639-1 planned language
    text: str
    labels: tuple[str, ...]  # planned emotions (empty = neutral)


@dataclass(frozen=True)
class FilterRules:
    """The recipe's `filters:` mapping; every key optional (defaults below)."""

    # language: minimum probability (0..1, among the loaded languages) of the planned language, which must also be
    # the top guess; per-language overrides
    langid_min_confidence: float = 0.5
    langid_min_confidence_by_language: Mapping[str, float] = field(default_factory=dict)
    # script: minimum share of letters in the language's expected script (names, brands, hashtags in Latin allowed)
    script_min_share: float = 0.75
    # length band: words for space-separated scripts, characters (letters and digits) for zh / ja
    min_words: int = 4
    max_words: int = 120
    min_chars: int = 8
    max_chars: int = 240
    # leakage: "planned" looks for the planned emotions' words, "all" for any emotion of the label set;
    # extra_leakage_words {language: {emotion: [word, ...]}} add to leakage.yaml ("stem*" = prefix match)
    leakage_scope: str = "planned"
    extra_leakage_words: Mapping[str, Mapping[str, Sequence[str]]] = field(default_factory=dict)
    # near duplicates: MinHash over character n-grams of the normalised text, LSH at this Jaccard threshold
    dedup_threshold: float = 0.8
    dedup_num_perm: int = 128
    dedup_ngram: int = 4

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> FilterRules:
        """Validated rules from a recipe's `filters:` mapping; ValueError (one line, naming the key) when bad."""
        data = dict(data or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"filters: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
        for name, value in data.items():
            _check_value(name, value, type(getattr(cls(), name)))
        rules = cls(**data)
        rules._validate()
        return rules

    def _validate(self) -> None:
        for name in ("langid_min_confidence", "script_min_share", "dedup_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"filters: {name} must be within [0, 1], got {getattr(self, name)}")
        for lang, value in self.langid_min_confidence_by_language.items():
            if lang not in LANGUAGES or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"filters: langid_min_confidence_by_language.{lang} needs a known language and 0..1")
        if not (0 < self.min_words <= self.max_words and 0 < self.min_chars <= self.max_chars):
            raise ValueError("filters: length band needs 0 < min_words <= max_words and 0 < min_chars <= max_chars")
        if self.leakage_scope not in ("planned", "all"):
            raise ValueError(f"filters: leakage_scope must be 'planned' or 'all', got {self.leakage_scope!r}")
        for lang, words in self.extra_leakage_words.items():
            if lang not in LANGUAGES or not isinstance(words, Mapping):
                raise ValueError(
                    f"filters: extra_leakage_words.{lang} needs a known language and {{emotion: [words]}}"
                )
            for emotion, terms in words.items():
                if not isinstance(terms, list) or not all(isinstance(t, str) and t.strip("*") for t in terms):
                    raise ValueError(f"filters: extra_leakage_words.{lang}.{emotion} must be a list of words")
        if self.dedup_num_perm < 16 or self.dedup_ngram < 1:
            raise ValueError("filters: dedup_num_perm must be >= 16 and dedup_ngram >= 1")

    def min_confidence(self, language: str) -> float:
        return self.langid_min_confidence_by_language.get(language, self.langid_min_confidence)


def _check_value(name: str, value: Any, kind: type) -> None:
    ok = (
        isinstance(value, int | float) and not isinstance(value, bool)
        if kind is float
        else isinstance(value, int) and not isinstance(value, bool)
        if kind is int
        else isinstance(value, Mapping)
        if kind is dict
        else isinstance(value, kind)
    )
    if not ok:
        raise ValueError(f"filters: {name} must be a {kind.__name__}, got {value!r}")


# ------------------------------------------------------------------------------------------------ text helpers
def normalise(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the form compared by leakage and duplicate checks."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


# letters, and the script-specific marks of abugidas (Devanagari vowel signs are marks, not letters; counting them
# keeps a brand name in Latin from outweighing a Hindi sentence); Inherited marks (combining accents) are neutral
_LETTER = regex.compile(r"\p{L}|(?!\p{scx=Inherited})\p{M}")
_WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+(?:['’\-][\p{L}\p{M}\p{N}]+)*")
_LETTER_OR_DIGIT = regex.compile(r"[\p{L}\p{N}]")


@functools.cache
def _script_pattern(scripts: tuple[str, ...]) -> regex.Pattern[str]:
    return regex.compile("|".join(rf"\p{{scx={s}}}" for s in scripts))


def script_share(text: str, language: str) -> float:
    """Share of the letters (and script marks) of `text` in `language`'s expected script (0.0 for no letters)."""
    letters = _LETTER.findall(unicodedata.normalize("NFC", text))
    if not letters:
        return 0.0
    pattern = _script_pattern(SCRIPTS.get(language, LATIN))
    return sum(1 for ch in letters if pattern.match(ch)) / len(letters)


def text_length(text: str, language: str) -> tuple[int, str]:
    """(length, unit): letters and digits for zh / ja, words for the rest."""
    if language in CHAR_LANGUAGES:
        return len(_LETTER_OR_DIGIT.findall(text)), "chars"
    return len(_WORD.findall(text)), "words"


# ------------------------------------------------------------------------------------------------ language id
@functools.cache
def _detector() -> Any:
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
    identifier.set_languages([*LANGUAGES, *CONFUSABLE])
    return identifier


def detect_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code of the most likely language, its probability 0..1 among the loaded languages)."""
    language, probability = _detector().classify(text)
    return language, float(probability)


def check_language(sample: Candidate, rules: FilterRules) -> str | None:
    """The detector's top language is the planned one, with at least the language's minimum confidence."""
    detected, confidence = detect_language(sample.text)
    if detected != sample.language:
        return f"detected {detected or 'none'} ({confidence:.2f}), planned {sample.language}"
    threshold = rules.min_confidence(sample.language)
    if confidence < threshold:
        return f"{sample.language} confidence {confidence:.2f} < {threshold:.2f}"
    return None


def check_script(sample: Candidate, rules: FilterRules) -> str | None:
    """At least `script_min_share` of the letters are in the language's expected script."""
    share = script_share(sample.text, sample.language)
    if share < rules.script_min_share:
        expected = "/".join(SCRIPTS.get(sample.language, LATIN))
        return f"{share:.0%} of letters in {expected} < {rules.script_min_share:.0%}"
    return None


def check_length(sample: Candidate, rules: FilterRules) -> str | None:
    """Length within the recipe's band (words, or characters for zh / ja)."""
    length, unit = text_length(sample.text, sample.language)
    low, high = (rules.min_chars, rules.max_chars) if unit == "chars" else (rules.min_words, rules.max_words)
    if not low <= length <= high:
        return f"{length} {unit} outside [{low}, {high}]"
    return None


# ------------------------------------------------------------------------------------------------ leakage
@functools.cache
def _leakage_file(path: Path = LEAKAGE_FILE) -> dict[str, dict[str, tuple[str, ...]]]:
    with path.open(encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    return {lang: {emo: tuple(words) for emo, words in table.items()} for lang, table in raw["languages"].items()}


def leakage_words(language: str, rules: FilterRules) -> dict[str, tuple[str, ...]]:
    """emotion -> words that name it in `language` (leakage.yaml plus the recipe's extra words)."""
    table = dict(_leakage_file().get(language, {}))
    for emotion, words in rules.extra_leakage_words.get(language, {}).items():
        table[emotion] = (*table.get(emotion, ()), *words)
    return table


@functools.cache
def _term_pattern(term: str, bounded: bool) -> regex.Pattern[str]:
    """A whole word; `stem*` any word starting with the stem, `*stem*` the stem anywhere in a word; a substring
    where the script has no word boundaries (`bounded` False)."""
    body = regex.escape(normalise(term.strip("*")))
    if not bounded:
        return regex.compile(body)
    word_char = r"[\p{L}\p{M}\p{N}]"  # the match spans the whole word, so the reason shows it
    head = word_char + "*" if term.startswith("*") else rf"(?<!{word_char})"
    tail = word_char + "*" if term.endswith("*") else rf"(?!{word_char})"
    return regex.compile(head + body + tail)


def find_leak(text: str, language: str, emotions: Sequence[str], rules: FilterRules) -> str | None:
    """'<emotion>: "<word>"' for the first emotion of `emotions` named in `text`, or None."""
    normal = normalise(text)
    table = leakage_words(language, rules)
    bounded = language not in CHAR_LANGUAGES
    for emotion in emotions:
        for term in table.get(emotion, ()):
            found = _term_pattern(term, bounded).search(normal)
            if found:
                return f'{emotion}: "{found.group(0)}"'
    return None


def check_leakage(sample: Candidate, rules: FilterRules) -> str | None:
    """The text does not spell out an emotion's name (planned emotions, or all with leakage_scope: all)."""
    if rules.leakage_scope == "all":
        emotions: Sequence[str] = sorted(_leakage_file().get(sample.language, {}))
    else:
        emotions = sample.labels
    return find_leak(sample.text, sample.language, emotions, rules)


def per_sample_filters() -> list[tuple[str, Callable[[Candidate, FilterRules], str | None]]]:
    """Ordered (name, check) pairs; a check returns None (keep) or a short reason detail."""
    return [
        ("language", check_language),
        ("script", check_script),
        ("length", check_length),
        ("leakage", check_leakage),
    ]


# ------------------------------------------------------------------------------------------------ duplicates
_NOT_WORD_CHAR = regex.compile(r"[^\p{L}\p{M}\p{N}]+")


def dedup_key(text: str) -> str:
    """`normalise`d text without spaces and punctuation: texts differing only in those are exact duplicates (and
    character n-grams of it suit scripts without word spaces)."""
    return _NOT_WORD_CHAR.sub("", normalise(text))


def _shingles(compact: str, n: int) -> set[bytes]:
    if len(compact) <= n:
        return {compact.encode("utf-8")}
    return {compact[i : i + n].encode("utf-8") for i in range(len(compact) - n + 1)}


def near_duplicates(candidates: Sequence[Candidate], rules: FilterRules) -> dict[str, str]:
    """id -> reason ('exact_duplicate of <id>' / 'near_duplicate of <id> (jaccard 0.91)') for the ones to drop;
    deterministic: the first in `candidates` order is kept; within and across languages.

    Exact duplicates (same `dedup_key`: case, spacing and punctuation ignored) first; then MinHash (fixed seed) over
    character n-gram shingles, with LSH banded for `dedup_threshold` - LSH_MARGIN (MinHash's estimate of a 0.9 pair
    can fall under 0.8, and a missed near duplicate is never revisited); every LSH hit is confirmed by the exact
    Jaccard of the shingle sets against `dedup_threshold`, so the figure reported is exact and nothing below it goes."""
    from datasketch import MinHash, MinHashLSH

    dropped: dict[str, str] = {}
    first_by_text: dict[str, str] = {}
    lsh = MinHashLSH(threshold=max(0.05, rules.dedup_threshold - LSH_MARGIN), num_perm=rules.dedup_num_perm)
    kept_shingles: dict[str, tuple[int, set[bytes]]] = {}  # id -> (position in candidates, shingles)
    for position, sample in enumerate(candidates):
        compact = dedup_key(sample.text)
        digest = hashlib.sha1(compact.encode("utf-8")).hexdigest()
        if digest in first_by_text:
            dropped[sample.id] = f"exact_duplicate of {first_by_text[digest]}"
            continue
        first_by_text[digest] = sample.id
        shingles = _shingles(compact, rules.dedup_ngram)
        signature = MinHash(num_perm=rules.dedup_num_perm, seed=1)
        signature.update_batch(sorted(shingles))
        best = _closest(lsh.query(signature), shingles, kept_shingles, rules.dedup_threshold)
        if best is not None:
            dropped[sample.id] = f"near_duplicate of {best[0]} (jaccard {best[1]:.2f})"
            continue
        lsh.insert(sample.id, signature)
        kept_shingles[sample.id] = (position, shingles)
    return dropped


def _closest(
    hits: Sequence[str], shingles: set[bytes], kept: Mapping[str, tuple[int, set[bytes]]], threshold: float
) -> tuple[str, float] | None:
    """(id, Jaccard) of the kept sample most similar to `shingles` among the LSH hits if it reaches `threshold`;
    ties go to the earliest kept (`kept` maps id -> (position, shingles))."""
    scored = []
    for hit in hits:
        position, other = kept[hit]
        jaccard = len(shingles & other) / len(shingles | other)
        if jaccard >= threshold:
            scored.append((-jaccard, position, hit))
    if not scored:
        return None
    negative, _, best = min(scored)
    return best, -negative


# ------------------------------------------------------------------------------------------------ judge
def check_judge_rule(rule: str) -> None:
    """ValueError (one line) unless `rule` is exact | superset | overlap | jaccard>=<x in 0..1>."""
    if rule in JUDGE_RULES:
        return
    if rule.startswith("jaccard>="):
        try:
            value = float(rule.removeprefix("jaccard>="))
        except ValueError:
            value = -1.0
        if 0.0 <= value <= 1.0:
            return
    raise ValueError(f"judge rule must be one of {', '.join(JUDGE_RULES)} or jaccard>=<0..1>, got {rule!r}")


def judge_agrees(planned: Sequence[str], judged: Sequence[str], rule: str) -> bool:
    """Whether the judge's emotions agree with the plan (both empty = neutral, and neutral only agrees with neutral
    under every rule): exact = same set; superset = the judge found every planned emotion (extra ones allowed);
    overlap = at least one shared; jaccard>=x = |P & J| / |P | J| >= x."""
    check_judge_rule(rule)
    plan, judge = {p.casefold() for p in planned}, {j.casefold() for j in judged}
    if not plan or not judge:
        return plan == judge
    if rule == "exact":
        return plan == judge
    if rule == "superset":
        return judge >= plan
    if rule == "overlap":
        return bool(plan & judge)
    return len(plan & judge) / len(plan | judge) >= float(rule.removeprefix("jaccard>="))
