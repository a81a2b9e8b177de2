"""The package as users install it: dependency ranges that the tested pins satisfy, one `mmaff` command, and a wheel
that works outside the checkout (installed into a fresh venv: `mmaff build` of the bundled sample gives the
checkout's corpus bytes, and `mmaff score` scores it)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import orjson
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mmaff import cli, paths

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
HEAVY = ("torch", "transformers", "trl", "datasets", "accelerate", "peft", "matplotlib", "scipy")


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _declared() -> list[Requirement]:
    project = PYPROJECT["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in [*project["dependencies"], *extras]]


def test_dependency_ranges_hold_the_tested_pins() -> None:
    pins = _pins()
    declared = {canonicalize_name(r.name): r for r in _declared()}
    unpinned = sorted(set(declared) - set(pins))
    assert not unpinned, f"dependencies without a tested pin in requirements.txt: {unpinned}"
    outside = [f"{n}=={pins[n]} not in {r.specifier}" for n, r in declared.items() if pins[n] not in r.specifier]
    assert not outside, outside
    undeclared = sorted(set(pins) - set(declared))
    assert not undeclared, f"pinned in requirements.txt but neither a dependency nor an extra: {undeclared}"
    assert all(r.specifier for r in declared.values()), "every dependency has a range"


def test_metadata_claims_only_what_is_tested() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0"  # SPDX expression (PEP 639)
    tested = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert project["requires-python"] == f">={tested},<3.{sys.version_info.minor + 1}"
    assert f"Programming Language :: Python :: {tested}" in project["classifiers"]
    assert project["scripts"] == {"mmaff": "mmaff.cli:main"}
    assert "vllm" not in {canonicalize_name(r.name) for r in _declared()}  # never required, not even as an extra


def test_the_checkout_is_found_as_the_project_root() -> None:
    assert paths.FROM_CHECKOUT and paths.PROJECT_ROOT == ROOT
    assert paths.builders_dir() == ROOT / "data_builders"
    assert paths.SAMPLE_RAW.is_dir() and paths.REGISTRY_PATH.is_file() and (paths.TASKS_DIR / "meld").is_dir()


def _mmaff(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mmaff.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_help_lists_every_subcommand_without_heavy_imports() -> None:
    probe = (
        "import sys, contextlib, io\nfrom mmaff import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n    assert cli.main(['--help']) == 0\n"
        "print(out.getvalue())\nprint('LOADED=' + ','.join(sorted(m for m in sys.modules if '.' not in m)))"
    )
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    shown, loaded = run.stdout.rsplit("LOADED=", 1)
    expected = "build train generate likelihood score report chained export import push-dataset push-model synth encoder seq2seq zero-shot".split()
    assert list(cli.SUBCOMMANDS) == expected
    assert all(f"  {name} " in shown for name in expected)
    assert not set(HEAVY) & set(loaded.strip().split(","))


def test_bad_subcommands_are_one_line_errors(monkeypatch, capsys) -> None:
    assert cli.main(["frobnicate"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown subcommand 'frobnicate'")
    monkeypatch.setitem(cli.SUBCOMMANDS, "score", ("mmaff.eval.not_there", "a module not installed"))
    assert cli.main(["score"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mmaff.eval.not_there is not part of this installation" in err
    assert cli.main([]) == 2 and "usage: mmaff" in capsys.readouterr().err


def test_a_subcommand_runs_its_module_with_its_errors(tmp_path) -> None:
    """`mmaff score` is `python -m mmaff.eval.score`: its own one-line error and exit status."""
    run = _mmaff("score", "--predictions", "nope.jsonl", "--corpus", str(tmp_path), "--out", str(tmp_path / "o"))
    assert run.returncode == 2 and run.stderr.startswith("error: --predictions nope.jsonl"), run.stderr
    assert "Traceback" not in run.stderr
    run = _mmaff("build", "--raw-root", str(tmp_path / "absent"), "--out", str(tmp_path / "c"))
    assert run.returncode == 2 and run.stderr.strip().endswith("is not a directory"), run.stderr


# ------------------------------------------------------------------------------------------------------- wheel
def _sha256s(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _source_copy(target: Path) -> Path:
    """The files a release is made of (tracked and new, not ignored), copied out so the build leaves the checkout
    alone and sees no stale build/ or egg-info."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)  # the mode too: git sees a lost executable bit as a change
    return target


def _fresh_venv_with_wheel(tmp_path: Path) -> Path:
    source = _source_copy(tmp_path / "src")
    # git answers for the copy as for the checkout: the wheel records the commit (and dirtiness) it was built from
    git_env = {**os.environ, "GIT_DIR": str(ROOT / ".git"), "GIT_WORK_TREE": str(source), "GIT_OPTIONAL_LOCKS": "0"}
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(source)],
        cwd=source,
        env=git_env,
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("mmaff-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], capture_output=True, text=True
    ).stdout.strip()
    # the tested dependencies without the network: the project venv's site-packages after the new venv's own (a
    # path line, so the checkout's editable-install hook there is not run)
    (Path(purelib) / "tested_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    subprocess.run(
        [*pip, "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    return venv


@pytest.mark.slow
def test_installed_wheel_builds_the_same_corpus_and_scores_it(tmp_path, sample_corpus) -> None:
    venv = _fresh_venv_with_wheel(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    mmaff = str(venv / "bin" / "mmaff")

    where = subprocess.run(
        [venv / "bin" / "python", "-c", "import mmaff, data_builders; print(mmaff.__file__, data_builders.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where  # installed, not the checkout

    build = subprocess.run([mmaff, "build", "--out", "corpus"], cwd=work, env=env, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    assert "data_builders/sample_raw" in build.stderr  # the bundled sample, shipped in the wheel
    # byte for byte the checkout's build of the same sample: records, media, rejects, card and manifest (its
    # raw_root, template sources and git commit included)
    assert _sha256s(work / "corpus") == _sha256s(sample_corpus)

    gold = []
    for path in sorted((work / "corpus" / "test").glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            record = orjson.loads(line)
            gold.append({"id": record["id"], "prediction": record["messages"][-1]["content"][0]["text"]})
    (work / "gold.jsonl").write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in gold))
    score = subprocess.run(
        [mmaff, "score", "--predictions", "gold.jsonl", "--corpus", "corpus", "--out", "scored", "--no-plots"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert score.returncode == 0, score.stderr[-3000:]
    report = orjson.loads((work / "scored" / "metrics.json").read_bytes())
    assert report["coverage"]["complete"] and len(report["tasks"]) == len(list(paths.TASKS_DIR.glob("*/*.yaml")))
    singles = [e["corrected"]["pooled"] for e in report["tasks"].values() if e["target_type"] == "single"]
    assert singles and all(p["accuracy"] == 1.0 for p in singles)
