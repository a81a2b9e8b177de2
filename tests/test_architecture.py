"""The layout holds: stages import one way and nothing imports in a circle (every import statement of mmaff/,
read with `ast`: those inside functions and under TYPE_CHECKING included); builders keep to their contract and
conventions (data_builders/README.md); recipe scripts hold no logic; the command lines start in well under 2 s."""

from __future__ import annotations

import ast
import graphlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmaff.data.mixture import read_yaml
from mmaff.data.registry import load_registry
from mmaff.data.schema import SPLITS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mmaff"
BUILDERS = ROOT / "data_builders"
REGISTRY = load_registry()

SHARED = {"mmaff.paths", "mmaff.redact", "mmaff.workers"}  # stdlib-only utilities any stage may use
CLIS = ("build", "generate", "likelihood", "score", "report", "tiny_model")  # `python -m mmaff.<cli>` shims
# stage -> the stages it may import (itself and the shared utilities always)
ALLOWED = {
    "data": set(),
    "encode": {"data"},
    "train": {"data", "encode", "hub"},
    "eval": {"data", "encode", "hub"},
    "hub": {"data", "encode"},  # cards, access checks, dataset publishing; train and eval write cards with it
    "synth": {"data", "encode", "eval"},  # beside eval: its OpenAI backend and plot saving; only mmaff.cli runs it
    "testing": {"data", "encode"},
    "baselines": {"data", "encode", "eval", "hub"},  # encoder / seq2seq baselines; only mmaff.cli runs them
    "shared": set(),
}
HEAVY = {
    "torch",
    "transformers",
    "torchvision",
    "datasets",
    "trl",
    "accelerate",
    "peft",
    "vllm",
    "matplotlib",
    "scipy",
}


# ------------------------------------------------------------------------------------------------ import graph
def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every name an import statement anywhere in the tree asks for (`from a import b` gives a.b)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, one level up per extra dot
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _owning_module(name: str, modules: dict[str, Path]) -> str | None:
    """The mmaff module that `name` is or lives in (`mmaff.data.schema.Example` -> mmaff.data.schema)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the mmaff modules it imports (package __init__ files count only for what they import)."""
    graph = {}
    for module, path in modules.items():
        names = _imported_names(ast.parse(path.read_text(encoding="utf-8")), module, path.name == "__init__.py")
        owners = {_owning_module(name, modules) for name in names if name.split(".")[0] == "mmaff"}
        # `from mmaff.data import x` names the package and its module x: keep only the deepest one
        graph[module] = {o for o in owners if o and o != module and not any(p.startswith(o + ".") for p in owners)}
    return graph


def stage_of(module: str) -> str:
    if module in SHARED:
        return "shared"
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else "top"


GRAPH = import_graph(MODULES)


def test_the_graph_sees_every_kind_of_import() -> None:
    source = (
        "from __future__ import annotations\nfrom typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from mmaff.eval import score\n"
        "def f():\n    import mmaff.train.sft\n    from . import schema\n    from .records import RecordMaker\n"
    )
    names = set(_imported_names(ast.parse(source), "mmaff.data.stage", False))
    owners = {_owning_module(n, MODULES) for n in names if n.startswith("mmaff")}
    assert {"mmaff.eval.score", "mmaff.train.sft", "mmaff.data.schema", "mmaff.data.records"} <= owners
    assert GRAPH["mmaff.data.stage"] >= {"mmaff.data.builder", "mmaff.data.schema"}


def test_stages_import_one_way() -> None:
    wrong = []
    for module, imported in sorted(GRAPH.items()):
        stage = stage_of(module)
        if stage == "top":  # mmaff/__init__.py and the CLI shims (runpy, no imports)
            continue
        allowed = ALLOWED[stage] | {stage, "shared"}
        wrong += [f"{module} -> {target}" for target in sorted(imported) if stage_of(target) not in allowed]
    assert not wrong, "imports against the stage direction:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    sorter = graphlib.TopologicalSorter(GRAPH)
    try:
        sorter.prepare()
    except graphlib.CycleError as err:
        raise AssertionError("import cycle: " + " -> ".join(err.args[1])) from None


@pytest.mark.parametrize("cli", CLIS)
def test_cli_shim_runs_its_stage_module(cli: str) -> None:
    source = (PACKAGE / f"{cli}.py").read_text(encoding="utf-8")
    (target,) = re.findall(r'runpy\.run_module\("([\w.]+)"', source)
    assert target in MODULES and stage_of(target) in ALLOWED, target
    assert "def main" in MODULES[target].read_text(encoding="utf-8") or cli == "tiny_model", target


# ---------------------------------------------------------------------------------------------------- startup
HELP_PROBE = """
import contextlib, io, runpy, sys
sys.argv = [sys.argv[1], "--help"]
with contextlib.redirect_stdout(io.StringIO()) as shown, contextlib.suppress(SystemExit):
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
assert "usage:" in shown.getvalue(), shown.getvalue()
print(",".join(sorted({name.partition(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize("cli", CLIS)
def test_cli_help_is_light_and_fast(cli: str) -> None:
    """`--help` loads none of the heavy packages, and `python -m mmaff.<cli> --help` takes < 2 s (best of 3, so a
    busy machine does not fail it; measured ~0.05-0.25 s on 2 cores)."""
    probe = subprocess.run(
        [sys.executable, "-c", HELP_PROBE, f"mmaff.{cli}"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert not HEAVY & set(probe.stdout.strip().split(",")), (
        f"mmaff.{cli} --help loads {HEAVY & set(probe.stdout.split(','))}"
    )
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", f"mmaff.{cli}", "--help"], cwd=ROOT, capture_output=True, timeout=120
        )
        times.append(time.perf_counter() - start)
        assert run.returncode == 0 and b"usage:" in run.stdout, run.stderr[-3000:]
    assert min(times) < 2.0, times


# -------------------------------------------------------------------------------------------- builder contract
def _mmaff_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    found |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return {name for name in found if name.split(".")[0] == "mmaff"}


def _options_read(path: Path) -> set[str]:
    """Keys of `ctx.options.get("k", ...)` / `ctx.options["k"]` in a builder."""
    keys = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            target, args = node.func.value, node.args
        elif isinstance(node, ast.Subscript):
            target, args = node.value, [node.slice]
        else:
            continue
        if isinstance(target, ast.Attribute) and target.attr == "options" and args:
            assert isinstance(args[0], ast.Constant), f"{path.name}:{node.lineno}: option key must be a literal"
            keys.add(args[0].value)
    return keys


def _defines_build(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(isinstance(n, ast.FunctionDef) and n.name == "build" and len(n.args.args) == 1 for n in tree.body)


@pytest.mark.parametrize("builder", sorted(p.name for p in BUILDERS.glob("*.py") if p.name != "__init__.py"))
def test_builders_import_only_the_contract(builder: str) -> None:
    assert _mmaff_imports(BUILDERS / builder) <= {"mmaff.data.builder"}, builder


def test_the_contract_exports_what_it_lists() -> None:
    import mmaff.data.builder as contract

    assert all(hasattr(contract, name) for name in contract.__all__)
    assert _mmaff_imports(PACKAGE / "data" / "builder.py") <= {
        f"mmaff.data.{m}" for m in ("media", "rawio", "registry", "schema")
    }  # the contract itself stays clear of the pipeline (stage, records, dispositions)


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_every_dataset_follows_the_builder_conventions(key: str) -> None:
    """Each rule of data_builders/README.md "Adding a dataset", for this registry dataset."""
    spec = REGISTRY[key]
    builder = BUILDERS / f"{spec.builder}.py"
    assert builder.is_file() and _defines_build(builder), f"{key}: no build(ctx) in {builder.name}"
    assert _mmaff_imports(builder) <= {"mmaff.data.builder"}, key
    source = builder.read_text(encoding="utf-8")
    if spec.splits["strategy"] == "official":
        assert spec.splits["map"] and set(spec.splits["map"].values()) <= set(SPLITS), key
        assert 'splits["map"]' in source, f"{key}: official splits are mapped with ctx.spec.splits['map']"
    else:
        assert spec.splits["strategy"] == "seeded" and "map" not in spec.splits, key
    assert _options_read(builder) <= set(spec.options), f"{key}: reads options the registry does not declare"
    for option, choices in spec.option_choices.items():
        assert option in spec.options and spec.options[option] in choices, (key, option)
    sample = BUILDERS / "sample_raw" / spec.raw_dir
    assert sample.is_dir() and any(p.is_file() for p in sample.rglob("*")), f"{key}: no raw sample in {sample}"
    if spec.modality != "text":
        generators = [p.read_text(encoding="utf-8") for p in (BUILDERS / "sample_raw").glob("make_*_samples.py")]
        assert any(re.search(rf"\b{re.escape(spec.raw_dir)}\b", g) for g in generators), f"{key}: no media generator"
    assert (ROOT / "tests" / "builders" / f"test_{key}.py").is_file(), f"{key}: no tests/builders/test_{key}.py"
    for subtask in spec.subtasks:
        assert (ROOT / "eval" / "tasks" / key / f"{subtask}.yaml").is_file(), f"{key}: no task file for {subtask}"
    mixture = read_yaml(BUILDERS / "mixtures" / "mmaffin.yaml")
    assert key in mixture["datasets"], f"{key}: not in the mmaffin mixture"


# ------------------------------------------------------------------------------------------------------ recipes
@pytest.mark.parametrize("script", ["sft_3b.py", "sft_7b.py"])
def test_recipe_scripts_only_choose_their_default(script: str) -> None:
    """A recipe script is imports and one `launch(<recipe folder>, single_process=...)` under __main__."""
    tree = ast.parse((ROOT / "recipes" / script).read_text(encoding="utf-8"))
    body = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    *imports, main = body
    assert all(isinstance(node, ast.Import | ast.ImportFrom) for node in imports)
    assert _mmaff_imports(ROOT / "recipes" / script) == {"mmaff.train.launch"}
    assert isinstance(main, ast.If) and len(main.body) == 1
    call = main.body[0].value
    assert call.func.id == "launch" and [k.arg for k in call.keywords] == ["single_process"]


LAUNCH_PROBE = """
import sys
import mmaff.train.launch as launch

def armed():
    print("heavy loaded when armed:", sorted({"torch", "trl", "mmaff.train.sft"} & set(sys.modules)))
    raise SystemExit(0)

launch.stop_with_launcher = armed
launch.launch(None, "lora")
"""


def test_launch_arms_the_launcher_signal_before_the_heavy_imports() -> None:
    probe = subprocess.run([sys.executable, "-c", LAUNCH_PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert "heavy loaded when armed: []" in probe.stdout
