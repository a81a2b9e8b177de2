"""Report plots: one PNG per plot kind and target type (joint parts by their own type), valid and byte-identical on
reruns and under a different user style; confusion / per-label / ordinal counts hand-checked and equal to the
counts the corrected-mode metrics use; file names filesystem-safe and collision-checked."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from mmaff.data.answers import Parsed
from mmaff.eval import metrics
from mmaff.eval.plots import (
    DPI,
    PRIMARY_BY_TYPE,
    TaskRows,
    confusion_counts,
    confusion_figure,
    figure_size,
    group_bars_figure,
    multilabel_counts,
    ordinal_counts,
    safe_name,
    write_all_plots,
    write_task_plots,
)
from mmaff.eval.score import ReplyParser, corpus_items, score_corrected, train_means
from mmaff.eval.tasks import load_tasks

TASKS = load_tasks()
EXPECTED = {  # task -> file suffixes (<safe task>.<suffix>.png)
    "fer2013/EC": ["confusion"],
    "semeval2018/E-c": ["per_label", "per_language"],
    "semeval2018/EI-reg": ["scatter", "per_language", "per_emotion"],
    "semeval2018/EI-oc": ["heatmap", "per_language", "per_emotion"],
    "emotic/VAD": ["vad"],
    "chsims/SP+SI": ["SP.confusion", "SI.scatter"],
    "semeval2018/V-reg+E-c": ["SI.scatter", "SI.per_language", "EC.per_label", "EC.per_language"],
    "masive/ASI": ["per_language"],
}
LANGUAGES = ["en", "es", "ar"]
EMOTIONS = ["anger", "fear", "joy", "sadness"]
COPIES = 8


def _perturb(kind: str, space: dict, value, k: int):
    """A deterministic wrong-ish prediction of the same shape as `value`."""
    if kind == "single":
        labels = space["labels"]
        return labels[(labels.index(value) + 1 + k) % len(labels)]
    if kind == "multi":
        return [space["labels"][k % len(space["labels"])]]
    if kind == "real":
        return round(value + (0.2 if k % 2 else -0.15), 3)
    if kind == "ordinal":
        return value - 1 if value > space["min"] else value + 1
    if kind == "vad":
        return {dim: x + 0.1 * (k % 3 - 1) for dim, x in value.items()}
    if kind == "joint":
        return {part: _perturb(space["types"][part], space["parts"][part], v, k) for part, v in value.items()}
    return value  # open


@pytest.fixture(scope="module")
def scored(sample_corpus):
    """task -> TaskRows for the tasks of EXPECTED: each sample item copied COPIES times (languages / emotions
    cycled where the task groups by them), parsed gold answers for half, perturbed for a quarter, None for the rest."""
    tasks = {name: TASKS[name] for name in EXPECTED}
    means = train_means(sample_corpus, tasks)
    parser = ReplyParser()
    by_task = defaultdict(list)
    for item in corpus_items(sample_corpus, tasks).values():
        by_task[item.task].append(item)
    rows = {}
    for name, task in tasks.items():
        items = []
        for k in range(COPIES):
            for item in sorted(by_task[name], key=lambda i: i.id):
                changes = {"id": f"{item.id}#{k}"}
                if "language" in task.group_by:
                    changes["language"] = LANGUAGES[k % len(LANGUAGES)]
                if "emotion" in task.group_by:
                    changes["emotion"] = EMOTIONS[k % len(EMOTIONS)]
                items.append(dataclasses.replace(item, **changes))
        parsed = {}
        for i, item in enumerate(items):
            gold = parser.parse(item, item.answer)
            assert gold.status == "strict", item.id
            if i % 4 < 2:
                parsed[item.id] = gold
            elif i % 4 == 2:
                parsed[item.id] = Parsed(_perturb(task.target_type, item.label_space, gold.value, i), "lenient")
            else:
                parsed[item.id] = Parsed(None, "failed")
        corrected = score_corrected(task, items, parsed, means.get(name, {}))
        rows[name] = TaskRows(items, [parsed[i.id].value for i in items], corrected)
    return tasks, rows


@pytest.fixture(scope="module")
def written(scored, tmp_path_factory):
    tasks, rows = scored
    out = tmp_path_factory.mktemp("report") / "plots"
    return out, write_all_plots(out, tasks, rows, relative_to=out.parent)


def _expected_size(task_name: str, suffix: str, rows: TaskRows) -> tuple[int, int]:
    *parts, kind = suffix.split(".")
    space, corrected = rows.items[0].label_space, rows.corrected
    if parts:
        space = space["parts"][parts[0]]
    n = {
        "confusion": lambda: len(space.get("labels", [])),
        "per_label": lambda: len(space.get("labels", [])),
        "heatmap": lambda: int(space["max"]) - int(space["min"]) + 1,
        "scatter": lambda: 0,
        "vad": lambda: len(space["dims"]),
        "per_language": lambda: len(corrected["per_language"]),
        "per_emotion": lambda: len(corrected["per_emotion"]),
    }[kind]()
    width, height = figure_size("groups" if kind.startswith("per_") and kind != "per_label" else kind, n)
    return round(width * DPI), round(height * DPI)


# ------------------------------------------------------------------------------------------------ files


def test_every_expected_png_is_written_valid_and_sized(scored, written):
    _, rows = scored
    out, paths = written
    assert list(paths) == list(EXPECTED)
    for name, suffixes in EXPECTED.items():
        expected = [f"plots/{safe_name(name)}.{suffix}.png" for suffix in suffixes]
        assert sorted(paths[name]) == sorted(expected), name
        for relative in paths[name]:
            path = out.parent / relative
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            with Image.open(path) as image:
                image.verify()
            with Image.open(path) as image:
                assert image.format == "PNG"
                assert "Software" not in image.info
                suffix = relative.split(".", 1)[1].removesuffix(".png")
                assert image.size == _expected_size(name, suffix, rows[name]), relative
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(p).name for ps in paths.values() for p in ps)
    with Image.open(out / "fer2013__EC.confusion.png") as image:  # 7 labels + invalid at 100 dpi
        assert image.size == (836, 610)


def test_rerun_is_byte_identical_and_ignores_the_user_style(scored, written, tmp_path):
    tasks, rows = scored
    out, paths = written
    before = dict(matplotlib.rcParams)
    again = write_all_plots(tmp_path / "plots", tasks, rows, relative_to=tmp_path)
    assert again == paths
    for relative in (p for ps in paths.values() for p in ps):
        assert (tmp_path / relative).read_bytes() == (out.parent / relative).read_bytes(), relative
    assert dict(matplotlib.rcParams) == before  # no style leaks out
    styled = tmp_path / "styled"
    with matplotlib.rc_context({"lines.linewidth": 6.0, "font.size": 20.0, "axes.facecolor": "red"}):
        files = write_task_plots(styled, tasks["semeval2018/EI-reg"], *rows["semeval2018/EI-reg"])
    for path in files:
        assert path.read_bytes() == (out / path.name).read_bytes(), path.name


def test_plots_never_import_pyplot(tmp_path):
    code = (
        "import sys; from pathlib import Path; import numpy as np; "
        "from mmaff.eval.plots import confusion_figure, save_png; "
        "save_png(confusion_figure('t', ['a', 'b'], np.array([[1, 0, 1], [0, 2, 0]]), {}), Path(sys.argv[1])); "
        "assert 'matplotlib.pyplot' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.png")], check=True)
    with Image.open(tmp_path / "c.png") as image:
        assert image.size == tuple(round(x * DPI) for x in figure_size("confusion", 2))


def test_group_bars_are_skipped_without_the_primary_metric(scored, tmp_path):
    tasks, rows = scored
    task = dataclasses.replace(tasks["semeval2018/E-c"], primary="no_such_metric")
    files = write_task_plots(tmp_path, task, *rows["semeval2018/E-c"])
    assert [p.name for p in files] == ["semeval2018__E-c.per_label.png"]
    assert write_task_plots(tmp_path / "empty", task, [], [], {}) == []
    with pytest.raises(ValueError, match="2 items but 1 values"):
        write_task_plots(tmp_path, task, rows["semeval2018/E-c"].items[:2], [None], {})


# ------------------------------------------------------------------------------------------------ counts


def test_confusion_counts_by_hand_with_invalid_column():
    labels = ["negative", "neutral", "positive"]
    gold = ["negative", "negative", "neutral", "positive", "positive", "positive"]
    pred = ["negative", None, "positive", "positive", "happy", ["positive"]]  # None, out of space, unhashable
    counts = confusion_counts(gold, pred, labels)
    assert counts.tolist() == [[1, 0, 0, 1], [0, 0, 1, 0], [0, 0, 1, 2]]
    assert counts.tolist() == metrics.single_label(gold, pred, labels)["confusion"]["matrix"]
    figure = confusion_figure("t", labels, counts, {"accuracy": 0.5})
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.texts] == ["1", "1", "1", "1", "2"]  # the non-zero cells, row by row
    assert [(t.get_position()) for t in axes.texts] == [(0, 0), (3, 0), (2, 1), (2, 2), (3, 2)]
    assert [t.get_text() for t in axes.get_xticklabels()] == labels + ["invalid"]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["negative (2)", "neutral (1)", "positive (3)"]
    assert "n=6, invalid=3" in axes.get_title() and "accuracy 0.500" in axes.get_title()
    with pytest.raises(ValueError, match="not in the label list"):
        confusion_counts(["other"], ["negative"], labels)


def test_confusion_counts_match_the_scored_task(scored):
    _, rows = scored
    items, values, corrected = rows["fer2013/EC"]
    labels = items[0].label_space["labels"]
    counts = confusion_counts([i.gold for i in items], values, labels)
    assert counts.tolist() == corrected["pooled"]["confusion"]["matrix"]
    assert counts[:, -1].sum() == corrected["pooled"]["invalid"] > 0


def test_multilabel_counts_by_hand():
    labels = ["a", "b", "c"]
    gold = [["a"], ["a", "b"], [], ["c"]]
    pred = [["a", "b"], None, ["zzz"], ["c", "c"]]  # FP b; invalid row; out-of-space dropped; duplicate once
    counts = multilabel_counts(gold, pred, labels)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 1], [1, 0, 0]]  # [TP, FN, FP]
    per_label = metrics.multi_label(gold, pred, labels)["per_label"]
    for label, (tp, fn, fp) in zip(labels, counts):
        assert (per_label[label]["support"], per_label[label]["predicted"]) == (tp + fn, tp + fp)
        assert per_label[label]["f1"] == pytest.approx(2 * tp / (2 * tp + fn + fp) if tp + fn + fp else 0.0)


def test_ordinal_counts_by_hand_and_against_the_metric():
    classes = [0, 1, 2, 3]
    gold = [0, 1, 3, 3, 2]
    pred = [0, None, 3, 7, 2.0]  # 7 is not a class: invalid, as in metrics.ordinal
    counts = ordinal_counts(gold, pred, classes)
    assert counts.tolist() == [[0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    confusion = np.array(metrics.ordinal(gold, pred, classes, impute=1.5)["confusion"]["matrix"])
    assert (confusion[:, :4] == counts[1:].T).all() and (confusion[:, 4] == counts[0]).all()


# ------------------------------------------------------------------------------------------------ names, metrics


def test_safe_names_are_unique_and_portable():
    assert safe_name("semeval2018/V-reg>E-c") == "semeval2018__V-reg_to_E-c"
    assert safe_name("chsims/SP+SI") == "chsims__SP_plus_SI"
    stems = {safe_name(name) for name in TASKS}
    assert len(stems) == len(TASKS)
    assert all(set(stem) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") for stem in stems)
    assert safe_name(".x") == "_.x" and safe_name("") == "_"


def test_colliding_task_names_are_refused(tmp_path):
    task = TASKS["fer2013/EC"]
    tasks = {"a/b>c": dataclasses.replace(task, name="a/b>c"), "a/b_to_c": dataclasses.replace(task, name="a/b_to_c")}
    with pytest.raises(ValueError, match="share the file name"):
        write_all_plots(tmp_path, tasks, {name: ([], [], {}) for name in tasks})
    assert not any(tmp_path.iterdir())


def test_group_bars_show_the_primary_metric_of_each_group(scored):
    _, rows = scored
    corrected = rows["semeval2018/V-reg+E-c"].corrected  # joint: each part by its own headline
    for part, metric in (("EC", "jaccard"), ("SI", "pearson")):
        groups = {language: result[part] for language, result in corrected["per_language"].items()}
        assert PRIMARY_BY_TYPE[rows["semeval2018/V-reg+E-c"].items[0].label_space["types"][part]] == metric
        figure = group_bars_figure("t", metric, groups, corrected["pooled"][part], "language")
        axes = figure.axes[0]
        heights = [bar.get_height() for bar in axes.patches]
        assert heights == pytest.approx([groups[language][metric] for language in sorted(groups)])
        assert [t.get_text() for t in axes.get_xticklabels()] == sorted(LANGUAGES)
        assert [line.get_ydata()[0] for line in axes.lines][0] == pytest.approx(corrected["pooled"][part][metric])
    ei = rows["semeval2018/EI-reg"].corrected
    figure = group_bars_figure("t", "pearson", ei["per_emotion"], ei["pooled"], "emotion", {"mean": 0.25})
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == [f"pooled {ei['pooled']['pearson']:.3f}", "mean 0.250"]
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == EMOTIONS
    assert group_bars_figure("t", "no_such_metric", ei["per_emotion"], ei["pooled"], "emotion") is None
    masive = rows["masive/ASI"].corrected  # open vocabulary: the declared name is the result key
    figure = group_bars_figure("t", "acc@1_normalised", masive["per_language"], masive["pooled"], "language")
    expected = [masive["per_language"][language]["acc@1_normalised"] for language in sorted(LANGUAGES)]
    assert [bar.get_height() for bar in figure.axes[0].patches] == pytest.approx(expected)
