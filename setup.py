"""Build hook only (all metadata is in pyproject.toml): a wheel carries the project folders the code reads at run time.

`templates/`, `eval/tasks/`, the registry, mixtures and bundled raw sample, `recipes/` and `ds_configs/` stay
top-level folders of the checkout (the design card's layout). setuptools' package data cannot map folders outside a
package, so `build_py` copies them into the wheel under `mmaff/_project/`, in the same layout, with `git.json`:
the commit the wheel was built from, which an installed build records in its manifest. `mmaff.paths` finds them
there when `mmaff` is not a checkout. Editable installs read the checkout itself, so nothing is copied for them.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # mmaff.paths is stdlib-only: one git_state for the build and the wheel
from mmaff.paths import BUNDLED_DIR, git_state  # noqa: E402

PROJECT_FOLDERS = (
    "templates",
    "eval/tasks",
    "data_builders/registry.yaml",
    "data_builders/mixtures",
    "data_builders/sample_raw",
    "recipes",
    "ds_configs",
)
BUNDLED = Path("mmaff") / BUNDLED_DIR
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


class BuildPyWithProjectFolders(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / BUNDLED
        shutil.rmtree(target, ignore_errors=True)
        for name in PROJECT_FOLDERS:
            source, copy = HERE / name, target / name
            copy.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, copy, ignore=SKIPPED)
            else:
                shutil.copy2(source, copy)
        (target / "git.json").write_text(json.dumps(git_state(HERE)) + "\n", encoding="utf-8")


setup(cmdclass={"build_py": BuildPyWithProjectFolders})
