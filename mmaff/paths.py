"""Where the project's data files live: the folders the design card names, read by the code at run time.

One lookup for a checkout (editable install or not) and an installed wheel. In a checkout they are the top-level
folders next to `mmaff/`. A wheel carries the same folders, in the same layout, under `mmaff/_project/` (setup.py
copies them there), so every path the build records relative to `PROJECT_ROOT` (`data_builders/sample_raw`,
`templates/mmaffben/...`) is the same string, and the same sample builds the same corpus bytes, in both.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_DIR = "_project"  # the wheel's copy of the project folders, inside the package
_CHECKOUT = PACKAGE_DIR.parent


def _is_checkout(root: Path) -> bool:
    return (root / "pyproject.toml").is_file() and (root / "templates").is_dir()


FROM_CHECKOUT = _is_checkout(_CHECKOUT)
PROJECT_ROOT = _CHECKOUT if FROM_CHECKOUT else PACKAGE_DIR / BUNDLED_DIR
REGISTRY_PATH = PROJECT_ROOT / "data_builders" / "registry.yaml"
MIXTURES_DIR = PROJECT_ROOT / "data_builders" / "mixtures"
SAMPLE_RAW = PROJECT_ROOT / "data_builders" / "sample_raw"
TEMPLATES_DIR = PROJECT_ROOT / "templates"
TASKS_DIR = PROJECT_ROOT / "eval" / "tasks"
RECIPES_DIR = PROJECT_ROOT / "recipes"
DS_CONFIGS_DIR = PROJECT_ROOT / "ds_configs"
# what the wheel records of the commit it was built from (the checkout asks git instead)
BUILD_INFO = PROJECT_ROOT / "git.json"


def builders_dir() -> Path:
    """The folder of the `data_builders` package, whose modules the build imports (the checkout's folder, or the
    installed package: a wheel ships the builders as a top-level package and only their data under `_project/`)."""
    if FROM_CHECKOUT:
        return PROJECT_ROOT / "data_builders"
    spec = importlib.util.find_spec("data_builders")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the data_builders package is not installed (pip install mmaff)")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def git_state(root: Path) -> dict[str, object]:
    """The commit of the git tree at `root` and whether tracked files differ from it (unknown outside git). The
    build records it in its manifest; setup.py records it for a wheel (an installed build reads `BUILD_INFO`)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        }
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}
