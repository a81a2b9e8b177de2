"""benchmarks/gpu_check.sh: the CPU --tiny run covers the whole GPU path; the carried wheel list resolves for the
device (cp312 manylinux) under the 60 MiB cap; the script starts no download."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
WHEELS = ROOT / "benchmarks" / "gpu_wheels.txt"
PARTS = (
    "train-3b-full-packed-sdpa",
    "train-3b-full-padded-sdpa",
    "train-3b-full-packed-fa2",
    "generation-3b",
    "likelihood-3b",
    "train-7b-lora-packed-sdpa",
    "train-7b-lora-padded-sdpa",
)
CAP = 60 * 2**20
DEVICE_PLATFORM = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def requirements() -> list[tuple[str, str]]:
    pins = []
    for line in WHEELS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins.append((name.strip(), version.strip()))
    return pins


def numbers(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from numbers(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


@pytest.mark.slow
def test_tiny_run_covers_every_part(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "HF_HUB_OFFLINE": "1",
        "no_proxy": "",
        "https_proxy": "http://0.0.0.0:9",
    }
    done = subprocess.run(
        ["bash", str(SCRIPT), "--tiny", "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert sorted(result["parts"]) == sorted(PARTS)
    for name, part in result["parts"].items():
        if name.endswith("-fa2"):
            assert part["status"].startswith("skipped"), part
            continue
        assert part["status"] == "ok", (name, part)
        assert all(math.isfinite(v) for v in numbers(part)), (name, part)
    for name in PARTS:
        if name.startswith("train") and not name.endswith("-fa2"):
            part = result["parts"][name]
            assert part["tokens_per_s"] > 0 and 0 < part["mfu"] and part["peak_memory_gib"] > 0
    packed, padded = result["parts"]["train-3b-full-packed-sdpa"], result["parts"]["train-3b-full-padded-sdpa"]
    assert packed["real_tokens"] == padded["real_tokens"]  # the same samples, two layouts
    assert packed["real_fraction"] == 1.0 > padded["real_fraction"]
    generation = result["parts"]["generation-3b"]
    assert generation["identical"] == generation["records"] > 0 and generation["distinct_outputs"] > 1
    assert result["parts"]["likelihood-3b"]["max_abs_score_diff"] < 1e-3  # float32 on CPU
    assert all(v is not None and math.isfinite(v) for v in result["ratios"].values())
    assert "| part | status |" in done.stdout


def test_bad_out_is_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--tiny", "--out", str(blocker / "sub")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.startswith("error: --out") and "Traceback" not in done.stderr


def test_gpu_path_starts_no_download() -> None:
    shell = SCRIPT.read_text()
    python = "".join(p.read_text() for p in (ROOT / "benchmarks").glob("gpu_check*.py"))
    assert "--no-index" in shell and "curl" not in shell and "wget" not in shell
    assert all("--no-index" in line for line in shell.splitlines() if re.search(r"pip install", line))
    assert "HF_HUB_OFFLINE=1" in shell and "TRANSFORMERS_OFFLINE=1" in shell
    for word in ('from_pretrained("', "hf_hub_download", "snapshot_download", "pip", "urllib", "requests"):
        assert word not in python, word


def test_wheel_list_resolves_for_the_device_under_the_cap(tmp_path: Path) -> None:
    """Resolve every pin for cp312 manylinux x86_64 with `pip download --no-deps` (the package index or the local
    pip cache), the same command as `make gpu-wheels`, and check the total size."""
    pins = requirements()
    assert pins and all(
        re.fullmatch(r"[A-Za-z0-9_.-]+", n) and re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", v) for n, v in pins
    )
    assert "flash-attn" not in {n for n, _ in pins}
    platforms = [arg for p in DEVICE_PLATFORM for arg in ("--platform", p)]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12"]
    command += ["--implementation", "cp", *platforms, "-d", str(tmp_path), "-r", str(WHEELS), "-q"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and ("connection" in done.stderr.lower() or "network" in done.stderr.lower()):
        pytest.skip(f"no package index and not in the pip cache: {done.stderr.splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-2000:]
    wheels = sorted(tmp_path.glob("*.whl"))
    assert len(wheels) == len(pins)
    for wheel in wheels:  # cp312 / abi3 / pure-Python, manylinux x86_64 or any platform
        tags = wheel.name.removesuffix(".whl").split("-")[-3:]
        assert tags[0] in ("py3", "cp312", "py2.py3") or tags[0].startswith("cp3"), wheel.name
        assert tags[2] == "any" or "manylinux" in tags[2] and "x86_64" in tags[2], wheel.name
    assert sum(w.stat().st_size for w in wheels) < CAP
