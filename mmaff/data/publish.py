"""Safe output folders: one build per output at a time, an atomic swap of the new corpus, and clean-up after crashes.

Next to the output `<out>` live `.<out>.lock` (who is building it), `.<out>.stage/` (per-dataset stages),
`.<out>.tmp-<pid>` (the corpus being assembled) and, only on file systems without an atomic exchange,
`.<out>.old` (the previous corpus during the swap). Everything but the lock file is covered by the lock.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import glob
import os
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from mmaff.redact import redact_command

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_HOLDER_READ_ATTEMPTS = 20  # the holder writes its details just after taking the lock


class OutputBusy(RuntimeError):
    """Another live process holds the output's lock."""


def lock_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.lock")


def backup_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.old")


def temp_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.tmp-{os.getpid()}")


def _holder(path: Path) -> str:
    """'pid N (started T, command C)' from the lock file, once its holder has written it."""
    for _ in range(_HOLDER_READ_ATTEMPTS):
        try:
            info = orjson.loads(path.read_bytes())
            return f"pid {info['pid']} (started {info['started']}: {info['command']})"
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
            time.sleep(0.05)
    return "another process"


@contextmanager
def output_lock(out: Path, wait: bool = False, log=print) -> Iterator[None]:
    """Hold an exclusive lock on `out` (and its stage) for the block; OutputBusy at once if another process holds
    it, unless `wait`. The lock file is never deleted: a process could still be waiting on its inode."""
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            if not wait:
                raise OutputBusy(
                    f"{out} is being built by {holder}; wait for it (--wait) or use another --out"
                ) from None
            log(f"waiting for {holder} to finish building {out}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        info = {"pid": os.getpid(), "started": started, "command": shlex.join(redact_command(sys.argv))}
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps(info) + b"\n", 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def publish(tmp: Path, out: Path) -> None:
    """Put the finished corpus `tmp` at `out`. With an atomic exchange `out` always holds a whole corpus, old or
    new; without one the old corpus waits at `.<out>.old` during the gap and `recover` puts it back."""
    if not out.exists():
        tmp.rename(out)
        return
    if _exchange(tmp, out):
        _remove(tmp)  # now the previous corpus
        return
    backup = backup_path(out)
    out.rename(backup)
    tmp.rename(out)
    _remove(backup)


def _remove(path: Path) -> None:
    """Remove a folder, or the link or file that stood at the output before."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)


def recover(out: Path, stage_root: Path) -> list[Path]:
    """With the lock held: put back a corpus left at `.<out>.old` by a crash mid-swap, and remove what dead
    builds left (assembly folders, stages being written). Returns the paths removed."""
    backup = backup_path(out)
    if backup.is_dir() and not out.exists():
        backup.rename(out)
    leftovers = sorted(out.parent.glob(f".{glob.escape(out.name)}.tmp-*")) + ([backup] if backup.exists() else [])
    if stage_root.is_dir():
        leftovers += sorted(p for p in stage_root.glob("*.tmp") if p.is_dir())
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return leftovers
