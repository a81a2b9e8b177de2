"""Where the project's data files live: the folders the design card names, read by the code at run time."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REGISTRY_PATH = PROJECT_ROOT / "data_builders" / "registry.yaml"
TEMPLATES_DIR = PROJECT_ROOT / "templates"
TASKS_DIR = PROJECT_ROOT / "eval" / "tasks"
