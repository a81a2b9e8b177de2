"""Build faults: two builds into one output, kill -9 of a build, a crash at any step of the publish, leftovers of
dead builds."""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import orjson
import psutil
import pytest
from helpers import Built, write_mixture

from mmaff.data import build as build_mod
from mmaff.data.build import ROOT, SAMPLE_RAW, build
from mmaff.data.stage import sha256_file


def _generated_raw(root: pathlib.Path, rows: int) -> pathlib.Path:
    """Two text datasets of `rows` rows each (GoEmotions TSV, weibo_senti_100k CSV): seconds of work per build."""
    goemotions, weibo = root / "goemotions", root / "weibo_senti_100k"
    goemotions.mkdir(parents=True)
    weibo.mkdir(parents=True)
    shutil.copy(SAMPLE_RAW / "goemotions" / "emotions.txt", goemotions)
    (goemotions / "train.tsv").write_text(
        "".join(f"generated comment {i} about item {i * 7 % 1000}\t{i % 28}\tg{i}\n" for i in range(rows)),
        encoding="utf-8",
    )
    for name in ("dev", "test"):
        lines = "".join(f"{name} comment {i}\t{i % 28}\t{name}{i}\n" for i in range(50))
        (goemotions / f"{name}.tsv").write_text(lines, encoding="utf-8")
    (weibo / "weibo_senti_100k.csv").write_text(
        "label,review\n" + "".join(f"{i % 2},微博内容 {i} 号\n" for i in range(rows)), encoding="utf-8"
    )
    return root


def _cli(raw: pathlib.Path, out: pathlib.Path, mixture: pathlib.Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "mmaff.data.build", "--raw-root", str(raw), "--out", str(out)]
    command += ["--mixture", str(mixture), "--no-cache", *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _assert_whole_corpus(out: pathlib.Path) -> None:
    """Every output the manifest lists is there with its sha256, and the records read back."""
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    for rel, info in manifest["outputs"].items():
        assert sha256_file(out / rel) == info["sha256"], rel
    assert (out / "README.md").is_file()
    Built(out)


def _tree_bytes(root: pathlib.Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _leftovers(parent: pathlib.Path) -> list[str]:
    names = [p.name for p in parent.iterdir() if ".tmp-" in p.name or p.name.endswith(".old")]
    stage = parent / ".corpus.stage"
    return names + ([p.name for p in stage.iterdir() if p.name.endswith(".tmp")] if stage.is_dir() else [])


@pytest.mark.slow
def test_second_build_into_the_same_output_fails_at_once_naming_the_holder(tmp_path):
    raw = _generated_raw(tmp_path / "raw", rows=30_000)
    mixture = write_mixture(tmp_path / "mixture.yaml", {"goemotions": {}, "weibo_senti": {}})
    out = tmp_path / "corpus"
    first = _cli(raw, out, mixture, "--workers", "1")
    lock = tmp_path / ".corpus.lock"

    def holds_lock() -> bool:
        assert first.poll() is None, "the first build ended without ever writing its lock file"
        return lock.is_file() and f'"pid":{first.pid},' in lock.read_text(encoding="utf-8")

    _wait_for(holds_lock, 60, "the first build never took the lock")
    second = _cli(raw, out, mixture, "--workers", "1")
    waiting = _cli(raw, out, mixture, "--workers", "1", "--wait")
    _, err = second.communicate(timeout=60)
    assert first.poll() is None, "the second build should fail while the first still runs"
    assert second.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: {out} is being built by pid {first.pid} (started ")
    assert lines[0].endswith("; wait for it (--wait) or use another --out")
    assert first.wait(timeout=300) == 0, first.stderr.read()
    log, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    assert f"waiting for pid {first.pid} (started " in log  # --wait: it waited for the first, then built
    _assert_whole_corpus(out)
    assert _leftovers(tmp_path) == []


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE  # an orphan zombie waits for init to reap it: it is dead
    except psutil.NoSuchProcess:
        return False


def test_pool_workers_die_with_a_killed_build(tmp_path):
    raw = _generated_raw(tmp_path / "raw", rows=100_000)
    mixture = write_mixture(tmp_path / "mixture.yaml", {"goemotions": {}, "weibo_senti": {}})
    build_process = _cli(raw, tmp_path / "corpus", mixture, "--workers", "2")
    main = psutil.Process(build_process.pid)
    _wait_for(lambda: len(main.children()) >= 2, 60, "the build never started its pool of two workers")
    time.sleep(0.5)  # the workers are inside their datasets
    survivors = _survivors_of_kill(build_process, main.children(recursive=True))
    assert survivors == [], f"pool workers still alive 5 s after kill -9 of the build: {survivors}"


def _survivors_of_kill(owner: subprocess.Popen, workers: list[psutil.Process]) -> list[int]:
    """kill -9 the owner; the pids of its workers still alive 5 s later (then killed, not to outlive the test)."""
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait(timeout=10)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [p.pid for p in workers if _alive(p)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    return survivors


MEDIA_POOL_OWNER = """
import time
from mmaff.data.media import MediaBudget, MediaChecker
checker = MediaChecker(MediaBudget(), processes=2)
checker.prefetch([("/nonexistent.png", "image")])  # starts the pool
busy = [checker._pool.apply_async(time.sleep, (60,)) for _ in range(2)]  # as if decoding two long clips
time.sleep(0.5)
print("ready", flush=True)
time.sleep(120)
"""


def test_media_pool_workers_die_with_their_owner():
    owner = subprocess.Popen([sys.executable, "-c", MEDIA_POOL_OWNER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert owner.stdout.readline().strip() == "ready"
    workers = psutil.Process(owner.pid).children(recursive=True)
    assert len(workers) == 2
    survivors = _survivors_of_kill(owner, workers)
    assert survivors == [], f"media pool workers still alive 5 s after kill -9 of their owner: {survivors}"


class Crash(BaseException):
    """A power cut: nothing catches it."""


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "no-exchange"])
@pytest.mark.parametrize("crash_at", range(4))
def test_a_crash_at_any_step_of_the_publish_leaves_a_whole_corpus(tmp_path, monkeypatch, exchange, crash_at):
    from mmaff.data import publish as publish_mod

    raw = tmp_path / "raw"
    shutil.copytree(SAMPLE_RAW / "goemotions", raw / "goemotions")
    mixture = write_mixture(tmp_path / "mixture.yaml", {"goemotions": {}})
    out = tmp_path / "corpus"
    build(raw, out, mixture, workers=1, log=lambda *_: None)
    old = _tree_bytes(out)
    with open(raw / "goemotions" / "dev.tsv", "a", encoding="utf-8") as f:
        f.write("A brand new comment\t17\tfx0199z\n")
    build(raw, tmp_path / "fresh", mixture, workers=1, use_cache=False, log=lambda *_: None)
    new = _tree_bytes(tmp_path / "fresh")
    assert new != old

    steps = {"active": False, "done": 0}

    def step(real):
        def wrapped(*args, **kwargs):
            if steps["active"]:
                if steps["done"] == crash_at:
                    steps["active"] = False
                    raise Crash
                steps["done"] += 1
            return real(*args, **kwargs)

        return wrapped

    real_exchange = publish_mod._exchange if exchange else (lambda a, b: False)
    monkeypatch.setattr(publish_mod, "_exchange", step(real_exchange))
    monkeypatch.setattr(pathlib.Path, "rename", step(pathlib.Path.rename))
    monkeypatch.setattr(shutil, "rmtree", step(shutil.rmtree))
    real_publish = build_mod.publish

    def publish(tmp, target):
        steps["active"] = True
        real_publish(tmp, target)
        steps["active"] = False

    monkeypatch.setattr(build_mod, "publish", publish)
    try:
        build(raw, out, mixture, workers=1, log=lambda *_: None)
    except Crash:
        pass
    if exchange:  # one atomic step: the old corpus or the new one, never a gap
        assert _tree_bytes(out) in (old, new)
    else:  # a gap between two renames; the next build puts the old corpus back first
        publish_mod.recover(out, tmp_path / ".corpus.stage")
        assert _tree_bytes(out) in (old, new)
    _assert_whole_corpus(out)
    monkeypatch.undo()
    build(raw, out, mixture, workers=1, log=lambda *_: None)
    assert _tree_bytes(out) == new
    assert _leftovers(tmp_path) == []


def test_next_build_removes_what_dead_builds_left(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(SAMPLE_RAW / "goemotions", raw / "goemotions")
    mixture = write_mixture(tmp_path / "mixture.yaml", {"goemotions": {}})
    out = tmp_path / "corpus"
    build(raw, out, mixture, workers=1, log=lambda *_: None)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    for leftover in (
        f".corpus.tmp-{dead_pid}",  # a corpus being assembled
        ".corpus.old",  # a previous corpus kept during a swap
        ".corpus.stage/goemotions.tmp",  # a dataset being staged
        ".corpus.stage/xed.tmp",  # ... of a dataset no longer in the mixture
    ):
        (tmp_path / leftover / "train").mkdir(parents=True)
        (tmp_path / leftover / "train" / "part.jsonl").write_text("{}\n", encoding="utf-8")
    build(raw, out, mixture, workers=1, log=lambda *_: None)
    assert _leftovers(tmp_path) == []
    _assert_whole_corpus(out)
