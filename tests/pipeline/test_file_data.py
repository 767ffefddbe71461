"""A source file's bytes for the tar stream: read by one C call when small and compiled
(``_append_small_file``), else in pieces by Python (``_file_data``); both report a vanished,
unreadable or shrunk file the same way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streaming_tar_compressor.errors import SourceChangedError, SourceError
from streaming_tar_compressor.pipeline import pack
from tests.fs.test_ops import built_module


@pytest.fixture(params=["compiled", "python"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    append_file = built_module().append_file if request.param == "compiled" else None
    monkeypatch.setattr(pack, "_append_file", append_file)
    return str(request.param)


def data(path: Path, size: int, skip: int = 0) -> bytes:
    """What the tar thread reads, by the path it takes for this file."""
    if pack._append_file is not None and not skip and size <= pack.READ_SIZE:
        buffer = bytearray(b"before")
        pack._append_small_file(buffer, str(path), size)
        assert buffer.startswith(b"before")
        return bytes(buffer[len(b"before") :])
    return b"".join(pack._file_data(str(path), size, skip))


def test_whole_files_and_a_resumed_tail(tmp_path, reader):
    path = tmp_path / "f"
    content = os.urandom(3 * pack.READ_SIZE // 2)
    path.write_bytes(content)
    assert data(path, len(content)) == content  # larger than one read: Python's pieces
    small = tmp_path / "small"
    small.write_bytes(content[:5000])
    assert data(small, 5000) == content[:5000]
    assert data(small, 5000, skip=1000) == content[1000:5000]
    (tmp_path / "empty").write_bytes(b"")
    assert data(tmp_path / "empty", 0) == b""


def test_a_file_that_shrank_since_the_walk(tmp_path, reader):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    with pytest.raises(SourceChangedError, match=r"shrank while being packed \(3 of 10 bytes\)"):
        data(path, 10)


def test_a_file_that_grew_gives_the_size_the_header_said(tmp_path, reader):
    path = tmp_path / "f"
    path.write_bytes(b"abcdef")
    assert data(path, 4) == b"abcd"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "No such file or directory"),
        (lambda p: p.mkdir(), "Is a directory"),
    ],
)
def test_a_file_that_vanished_or_became_a_folder(tmp_path, reader, make, message):
    path = tmp_path / "f"
    make(path)
    with pytest.raises(SourceError, match=message) as caught:
        data(path, 10)
    assert str(path) in str(caught.value)
