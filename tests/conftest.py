"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import build_tree

TEST_UMASK = 0o022


@pytest.fixture(autouse=True)
def known_umask() -> Iterator[None]:
    """Unpacked modes are the stored ones less the umask: every test runs under 022, whatever
    the shell that started pytest set."""
    previous = os.umask(TEST_UMASK)
    yield
    os.umask(previous)


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1_000_000))

    def make(files: dict[str, bytes] | None = None, **kwargs: bool) -> Path:
        default = {
            "a.txt": b"hello world\n" * 100,
            "sub/b.bin": os.urandom(70_000),
            "sub/deeper/c.txt": b"",
            "sub/deeper/zeros": bytes(300_000),
        }
        return build_tree(
            tmp_path / f"tree{next(counter)}", default if files is None else files, **kwargs
        )

    return make
