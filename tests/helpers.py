"""Test helpers: outside tools (skip, or fail under CI=true), building and comparing trees."""

from __future__ import annotations

import os
import random
import shutil
import stat
from pathlib import Path
from typing import Any, NoReturn

import pytest

from streaming_tar_compressor.fs.journal import UnpackJournal

IN_CI = os.environ.get("CI") == "true"


def tool(name: str) -> str:
    """Path of an outside tool; skips when absent, but under CI=true a missing tool fails."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not on PATH (interop test needs it; `make test` installs it in CI)")
    return path


def unavailable(message: str) -> NoReturn:
    """Skips a test whose outside tool is missing; fails it under CI=true, where `make test`
    installs every such tool, so a skip there would hide a test that never ran."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything a restore must reproduce: kind, permission bits, mtime, bytes, link target."""
    result: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                result[rel] = ("link", os.readlink(path), int(st.st_mtime))
            elif stat.S_ISDIR(st.st_mode):
                result[rel] = ("dir", stat.S_IMODE(st.st_mode), int(st.st_mtime))
            else:
                result[rel] = (
                    "file",
                    stat.S_IMODE(st.st_mode),
                    int(st.st_mtime),
                    path.read_bytes(),
                )
    return result


def inode_groups(root: Path) -> set[frozenset[str]]:
    """Sets of names that share an inode (hardlinks), for comparing link structure."""
    groups: dict[int, set[str]] = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                groups.setdefault(st.st_ino, set()).add(str(path.relative_to(root)))
    return {frozenset(g) for g in groups.values() if len(g) > 1}


def random_files(root: Path, seed: int, count: int, size: int) -> Path:
    """``count`` files of ``size`` seeded random bytes (they do not compress) in ``root``."""
    noise = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        (root / f"f{number:02d}").write_bytes(noise.randbytes(size))
    return root


def build_tree(root: Path, files: dict[str, bytes], *, links: bool = True) -> Path:
    """A tree with the given files plus an empty dir, a symlink, a hardlink and modes."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (1_700_000_000, 1_700_000_000))
    (root / "empty-dir").mkdir(exist_ok=True)
    if links:
        first = sorted(files)[0] if files else None
        if first is not None:
            os.symlink(first, root / "symlink-to-first")
            os.link(root / first, root / "hardlink-to-first")
    (root / "private.txt").write_bytes(b"secret\n")
    os.chmod(root / "private.txt", 0o600)
    os.chmod(root / "empty-dir", 0o700)
    return root


def interrupt_at_record(number: int) -> Any:
    """UnpackJournal.record that raises KeyboardInterrupt after writing its ``number``th record."""
    record = UnpackJournal.record
    records = [0]

    def interrupted(journal: UnpackJournal, *args: Any) -> None:
        record(journal, *args)
        records[0] += 1
        if records[0] == number:
            raise KeyboardInterrupt

    return interrupted
