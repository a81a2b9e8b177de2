"""SemEval-2018 EI headline: the official mean of per-emotion Pearsons (per language file, then the mean over
languages), never one Pearson pooled over the four emotions; constant predictions render as n/a, not 0.000."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr

from mmaff.data.answers import Parsed
from mmaff.eval.items import Item
from mmaff.eval.report import results_markdown
from mmaff.eval.score import _primary_value, against_chance, score_corrected
from mmaff.eval.tasks import load_tasks

EMOTIONS = ("anger", "fear", "joy", "sadness")
LANGUAGES = ("ar", "en", "es")


def _ei_items() -> tuple[list[Item], dict[str, Parsed]]:
    """Each (language, emotion) cell has its own intensity scale and its own prediction quality, so the pooled
    Pearson and the official mean differ."""
    rng = np.random.default_rng(12)
    items, parsed = [], {}
    for li, language in enumerate(LANGUAGES):
        for ei, emotion in enumerate(EMOTIONS):
            offset, noise = 0.15 * ei, 0.05 + 0.05 * (li + ei)
            gold = np.clip(offset + rng.uniform(0, 0.4, size=30), 0, 1)
            pred = np.clip(gold + rng.normal(0, noise, size=30) + 0.1 * (3 - ei), 0, 1)
            for k, (g, p) in enumerate(zip(gold, pred)):
                item_id = f"semeval2018/{language}/EI-reg/{emotion}/{k}"
                items.append(
                    Item(
                        item_id,
                        "semeval2018/EI-reg",
                        language,
                        float(g),
                        emotion,
                        "plain/x",
                        "real",
                        {"min": 0.0, "max": 1.0},
                        subset=language,
                    )
                )
                parsed[item_id] = Parsed(float(p), "strict")
    return items, parsed


def _scipy_cell(items: list[Item], parsed: dict[str, Parsed], language: str, emotion: str) -> float:
    rows = [i for i in items if i.language == language and i.emotion == emotion]
    return pearsonr([i.gold for i in rows], [parsed[i.id].value for i in rows])[0]


def test_headline_is_the_mean_of_per_emotion_pearsons_per_language_then_over_languages():
    task = load_tasks()["semeval2018/EI-reg"]
    items, parsed = _ei_items()
    corrected = score_corrected(task, items, parsed, {})
    official = corrected["official"]
    cells = {(lang, emo): _scipy_cell(items, parsed, lang, emo) for lang in LANGUAGES for emo in EMOTIONS}
    for (lang, emo), value in cells.items():
        assert official["cells"][f"{lang}|{emo}"] == pytest.approx(value, abs=1e-9)
    per_language = {lang: np.mean([cells[(lang, e)] for e in EMOTIONS]) for lang in LANGUAGES}
    for lang, value in per_language.items():
        assert official["per_language"][lang] == pytest.approx(value, abs=1e-9)
    headline = np.mean(list(per_language.values()))
    assert official["headline"] == pytest.approx(headline, abs=1e-9)
    # with all four emotions in every language, the mean over languages = the mean over the 12 cells
    assert official["headline"] == pytest.approx(np.mean(list(cells.values())), abs=1e-9)
    pooled = corrected["pooled"]["pearson"]
    assert abs(pooled - headline) > 0.01  # the pooled Pearson is a different (wrong) figure
    assert _primary_value(task, corrected) == pytest.approx(headline)
    gold = [i.gold for i in items]
    chance = against_chance("real", items[0].label_space, gold, {**corrected["pooled"], "pearson": headline})
    assert chance["chance_normalised"] == pytest.approx(headline)


def test_one_language_headline_is_the_official_per_file_score():
    task = load_tasks()["semeval2018/EI-reg"]
    items, parsed = _ei_items()
    english = [i for i in items if i.language == "en"]
    corrected = score_corrected(task, english, parsed, {})
    expected = np.mean([_scipy_cell(items, parsed, "en", e) for e in EMOTIONS])
    assert corrected["official"]["headline"] == pytest.approx(expected, abs=1e-9)
    assert list(corrected["official"]["per_language"]) == ["en"]


def test_results_md_shows_official_cells_and_constant_predictions_as_not_applicable():
    task = load_tasks()["semeval2018/EI-reg"]
    items, parsed = _ei_items()
    english = [i for i in items if i.language == "en"]
    constant = {i.id: (Parsed(0.5, "strict") if i.emotion == "joy" else parsed[i.id]) for i in english}
    corrected = score_corrected(task, english, constant, {})
    assert corrected["per_emotion"]["joy"]["constant_prediction"]
    assert corrected["official"]["constant_cells"] == ["en|joy"]
    report = _report({"semeval2018/EI-reg": _entry(task, corrected)})
    text = results_markdown(report)
    assert "| semeval2018/EI-reg | joy | 30 | n/a (constant) | n/a (constant) |" in text
    assert "joy n/a (constant)" in text  # the official cell table
    assert f"**{corrected['official']['headline']:.3f}**" in text

    everything_constant = score_corrected(task, english, {i.id: Parsed(0.5, "strict") for i in english}, {})
    real_task = load_tasks()["semeval2018/V-reg"]
    text = results_markdown(_report({"semeval2018/V-reg": _entry(real_task, everything_constant, official=False)}))
    assert "pearson n/a (constant)" in text and "pearson 0.000" not in text


def _entry(task, corrected: dict, official: bool = True) -> dict:
    if not official:
        corrected = {k: v for k, v in corrected.items() if k not in ("official", "per_language_emotion")}
    return {
        "dataset": task.dataset,
        "subtask": task.subtask,
        "modality": "text",
        "target_type": task.target_type,
        "primary": task.primary,
        "corrected": corrected,
        "primary_value": _primary_value(task, corrected),
    }


def _report(tasks: dict) -> dict:
    return {
        "predictions": "p.jsonl",
        "corpus": {"corpus": "c", "corpus_sha256": "0" * 64},
        "run": None,
        "rows": {"models": {}},
        "coverage": {"complete": True, "predicted_of_expected": {}},
        "truncated": {},
        "parse_status": {},
        "overall": {},
        "tasks": tasks,
    }
