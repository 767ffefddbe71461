"""A source file's bytes for the tar stream: small files appended with their headers in
batches (``_append_batch``: one C call when compiled, ``append_members_python`` otherwise),
large ones read in pieces (``_file_data``); all report a vanished, unreadable or shrunk file
the same way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streaming_tar_compressor.errors import SourceChangedError, SourceError
from streaming_tar_compressor.pipeline import pack
from tests.fs.test_ops import built_module

HEADER = b"h" * 512


@pytest.fixture(params=["compiled", "python"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    appender = (
        built_module().append_members if request.param == "compiled" else pack.append_members_python
    )
    monkeypatch.setattr(pack, "_append_members", appender)
    return str(request.param)


def data(path: Path, size: int, skip: int = 0) -> bytes:
    """What the tar thread reads, by the path it takes for this file."""
    if not skip and size <= pack.READ_SIZE:
        buffer = bytearray(b"before")
        pack._append_batch(buffer, ((HEADER, str(path), size),))
        assert buffer.startswith(b"before" + HEADER)
        appended = bytes(buffer[len(b"before" + HEADER) :])
        assert len(appended) % 512 == 0 and appended[size:] == bytes(len(appended) - size)
        return appended[:size]
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


def test_a_batch_appends_headers_data_and_padding_in_order(tmp_path, reader):
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_bytes(b"x" * 700)
    second.write_bytes(b"y" * 512)
    link = b"l" * 512
    buffer = bytearray(b"0" * 10)
    batch = ((HEADER, str(first), 700), (link, None, 0), (HEADER, str(second), 512))
    pack._append_batch(buffer, batch)
    expected = b"0" * 10 + HEADER + b"x" * 700 + bytes(324) + link + HEADER + b"y" * 512
    assert bytes(buffer) == expected


def test_a_file_that_shrank_since_the_walk(tmp_path, reader):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    with pytest.raises(SourceChangedError, match=r"shrank while being packed \(3 of 10 bytes\)"):
        data(path, 10)


def test_a_shrunk_file_in_a_batch_leaves_the_members_before_it(tmp_path, reader):
    whole, shrunk = tmp_path / "a", tmp_path / "b"
    whole.write_bytes(b"x" * 10)
    shrunk.write_bytes(b"y" * 3)
    buffer = bytearray()
    batch = ((HEADER, str(whole), 10), (HEADER, str(shrunk), 10), (HEADER, str(whole), 10))
    with pytest.raises(SourceChangedError, match=r"/b': it shrank .*\(3 of 10 bytes\)"):
        pack._append_batch(buffer, batch)
    assert bytes(buffer) == HEADER + b"x" * 10 + bytes(502)


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


def test_a_batch_reads_files_across_folders_and_without_one(tmp_path, reader, monkeypatch):
    """Files of one folder are opened relative to it (compiled): folders alternate, a name
    has no folder, a folder is gone, and each file still gets its own bytes or error."""
    monkeypatch.chdir(tmp_path)
    for path, data in {"a/x": b"ax", "b/x": b"bx", "a/y": b"ay", "top": b"t"}.items():
        Path(path).parent.mkdir(exist_ok=True)
        Path(path).write_bytes(data)
    buffer = bytearray()
    names = ("a/x", "b/x", "a/y", "top", str(tmp_path / "a" / "x"))
    pack._append_batch(buffer, tuple((HEADER, name, 2 if name != "top" else 1) for name in names))
    contents = [bytes(buffer[i * 1024 + 512 : i * 1024 + 514]) for i in range(len(names))]
    assert contents == [b"ax", b"bx", b"ay", b"t\0", b"ax"]
    with pytest.raises(SourceError, match=r"gone/x.*No such file"):
        pack._append_batch(bytearray(), ((HEADER, "a/x", 2), (HEADER, "gone/x", 2)))
