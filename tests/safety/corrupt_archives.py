"""Intact archives to damage, and the check every corrupt-input test makes afterwards.

Each archive is packed once per session with small chunks and blocks, so every codec's stream
spans several chunks and blocks; tests damage copies of it, never the original.
"""

from __future__ import annotations

import random
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import streaming_tar_compressor as stc
from streaming_tar_compressor.core.manifest import Manifest
from streaming_tar_compressor.models import CompressionType
from tests.helpers import build_tree, snapshot

CHUNK_SIZE = 1500
BLOCK_SIZE = 8192
ALL_KINDS = list(CompressionType)
COMPRESSED_KINDS = [kind for kind in CompressionType if kind is not CompressionType.NONE]
# What damaged bytes may raise when no SHA-256 is checked: the codec or tar layer notices, or
# a damaged name breaks a safety rule. Never anything outside the package's hierarchy.
DECODE_ERRORS = (stc.CorruptStreamError, stc.UnsafeMemberError)
TEMP_NAME = re.compile(r"\.stc-.*\.tmp")
# The unpack journal (fs/journal.py) stays after a failure so that a resume can use it.
JOURNAL_NAME = re.compile(r"\.stc-unpack-[0-9a-f]+\.journal")

Entry = tuple[object, ...]


def tree_files(seed: int) -> dict[str, bytes]:
    """Text, incompressible bytes (the codecs' stored path), zeros and an empty file."""
    rng = random.Random(seed)
    return {
        "a.txt": b"".join(b"line %d of tree %d\n" % (i, seed) for i in range(200)),
        "random.bin": rng.randbytes(3500),
        "sub/zeros": bytes(2500),
        "sub/empty": b"",
        "sub/deeper/notes.txt": b"notes of tree %d\n" % seed * 100,
    }


@dataclass(frozen=True)
class Archive:
    """One packed archive: its files on disk (left intact) and what restoring it gives."""

    kind: CompressionType
    prefix: Path
    manifest: Manifest
    parts: tuple[bytes, ...]
    expected: dict[str, Entry]  # snapshot() of a good restore: path → entry

    @property
    def stream(self) -> bytes:
        return b"".join(self.parts)

    @property
    def names(self) -> list[str]:
        return [chunk.name for chunk in self.manifest.chunks]

    def copy_to(self, directory: Path) -> Path:
        """A copy of every file of the archive in ``directory``; returns its prefix."""
        directory.mkdir(parents=True, exist_ok=True)
        for path in self.prefix.parent.iterdir():
            shutil.copy2(path, directory / path.name)
        return directory / self.prefix.name


class ArchiveFactory:
    """Packs each (codec, tree seed) once; ``scratch`` gives fresh folders."""

    def __init__(self, base: Path) -> None:
        self._base = base
        self._archives: dict[tuple[CompressionType, int], Archive] = {}

    def get(self, kind: CompressionType, seed: int = 1) -> Archive:
        key = (kind, seed)
        if key not in self._archives:
            self._archives[key] = self._pack(kind, seed)
        return self._archives[key]

    def scratch(self) -> Path:
        """A new empty folder; left for pytest's temp-dir cleanup (removing each one costs more
        than the test that used it)."""
        return Path(tempfile.mkdtemp(dir=self._base, prefix="scratch-"))

    def _pack(self, kind: CompressionType, seed: int) -> Archive:
        home = self._base / f"{kind.value}-{seed}"
        tree = build_tree(home / "tree", tree_files(seed))
        result = stc.pack(
            [tree],
            home / "arc" / "b",
            compression=kind,
            chunk_size=CHUNK_SIZE,
            block_size=BLOCK_SIZE,
        )
        reference = home / "reference"
        stc.unpack(home / "arc" / "b", reference)
        parts = tuple(Path(chunk.path).read_bytes() for chunk in result.chunks)
        assert len(parts) >= 3, "every codec's archive must span several chunks"
        return Archive(kind, home / "arc" / "b", result.manifest, parts, snapshot(reference))


def assert_nothing_false(out: Path, expected: dict[str, Entry]) -> None:
    """No temporary file is left, and every file or link under its final name is exactly what
    the intact archive restores there (folders may be made early: they hold no data; the
    hidden unpack journal is no restored file)."""
    for rel, entry in snapshot(out).items():
        if entry[0] == "dir" or JOURNAL_NAME.fullmatch(Path(rel).name):
            continue
        assert not TEMP_NAME.fullmatch(Path(rel).name), f"temporary file left behind: {rel}"
        assert expected.get(rel) == entry, f"{rel} looks complete but is not what was packed"


def assert_whole(out: Path, expected: dict[str, Entry]) -> None:
    """The restore is complete: every file and link as packed, no path more or less (folders
    above the tree are made on the way and have no packed mtime to compare)."""
    found = snapshot(out)
    assert found.keys() == expected.keys()
    assert {k: v for k, v in found.items() if v[0] != "dir"} == {
        k: v for k, v in expected.items() if v[0] != "dir"
    }


def write_parts(prefix: Path, parts: list[bytes | None]) -> None:
    """Overwrite the chunk files of ``prefix`` (``None``: remove that chunk)."""
    for index, data in enumerate(parts):
        path = prefix.parent / f"{prefix.name}.part{index:04d}"
        if data is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(data)


def flip(data: bytes, position: int, bit: int) -> bytes:
    damaged = bytearray(data)
    damaged[position] ^= 1 << bit
    return bytes(damaged)


def cut(data: bytes, size: int) -> list[bytes]:
    """``data`` in pieces of ``size`` bytes, as a pipe would deliver it."""
    return [data[start : start + size] for start in range(0, len(data), size)]
