"""Eval task declarations: one per registry subtask, consistent with the registry, greedy, known metrics."""

from __future__ import annotations

import shutil

import pytest

from mmaff.data.registry import load_registry
from mmaff.eval.tasks import TaskError, check_tasks, load_tasks
from mmaff.paths import TASKS_DIR

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
    extensions = load_tasks(group="extensions")
    assert set(extensions) == set(tasks) - set(mmaffben) and not any(t.paper_compat for t in extensions.values())
    assert tasks["semeval2018/EI-reg"].group_by == ("language", "emotion")
    assert tasks["mms/SP"].group_by == ("language",) and tasks["meld/EC"].group_by == ()


def test_a_malformed_task_or_a_missing_one_is_refused(tmp_path):
    shutil.copy(TASKS_DIR / "_defaults.yaml", tmp_path / "_defaults.yaml")
    (tmp_path / "meld").mkdir()
    task = tmp_path / "meld" / "SP.yaml"
    task.write_text("target_type: real\n")  # the registry states it: not a task key
    with pytest.raises(TaskError, match=r"SP.yaml: unknown key target_type"):
        load_tasks(tmp_path, registry=REGISTRY)
    task.write_text("generation: {do_sample: true}\n")
    with pytest.raises(TaskError, match="do_sample must be false"):
        load_tasks(tmp_path, registry=REGISTRY)
    task.write_text("groups: [mmaffben]\n")
    with pytest.raises(TaskError, match="without an eval task"):
        check_tasks(load_tasks(tmp_path, registry=REGISTRY), REGISTRY)
