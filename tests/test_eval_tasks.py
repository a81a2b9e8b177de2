"""Eval task declarations: one per registry subtask, consistent with the registry, greedy, known metrics."""

from __future__ import annotations

import pytest

from mmaff.data.registry import load_registry
from mmaff.eval.tasks import TaskError, check_tasks, load_tasks

REGISTRY = load_registry()


def test_every_registry_subtask_has_exactly_one_consistent_task():
    tasks = load_tasks()
    check_tasks(tasks, REGISTRY)
    assert len(tasks) == sum(len(spec.subtasks) for spec in REGISTRY.values())


def test_groups_cover_the_modalities_and_the_paper():
    tasks = load_tasks()
    by_modality = {m: set(load_tasks(group=m)) for m in ("text", "image", "video")}
    assert set().union(*by_modality.values()) == set(tasks) == set(load_tasks(group="all"))
    mmaffben = load_tasks(group="mmaffben")
    assert {t.dataset for t in mmaffben.values()} == {
        "semeval2018",
        "ewect",
        "online_shopping",
        "mms",
        "xed",
        "emotic",
        "fer2013",
        "cfaps",
        "samsemo",
        "meld",
        "chsims",
    }  # MMAFFBen's 14 datasets: SemEval counts en/ar/es as three
    assert all(t.paper_compat for t in mmaffben.values())
    assert tasks["semeval2018/EI-reg"].group_by == ("language", "emotion")
    assert tasks["mms/SP"].group_by == ("language",) and tasks["meld/EC"].group_by == ()


def test_a_task_that_disagrees_with_the_registry_is_refused(tmp_path):
    good = load_tasks()["meld/SP"].path.read_text()
    (tmp_path / "meld").mkdir()
    (tmp_path / "meld" / "SP.yaml").write_text(good.replace("target_type: single", "target_type: real"))
    with pytest.raises(TaskError, match="disagrees with the registry"):
        check_tasks(load_tasks(tmp_path), REGISTRY)
    (tmp_path / "meld" / "SP.yaml").write_text(good.replace("do_sample: false", "do_sample: true"))
    with pytest.raises(TaskError, match="greedy"):
        check_tasks(load_tasks(tmp_path), REGISTRY)
    (tmp_path / "meld" / "SP.yaml").write_text(good)
    with pytest.raises(TaskError, match="without an eval task"):
        check_tasks(load_tasks(tmp_path), REGISTRY)
