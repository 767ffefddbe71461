"""The unpack's reads from a store: checked chunks fetched ahead, ranges kept in flight across
chunk boundaries, the prefetch started again where reads jump, and stopped with its source."""

from __future__ import annotations

import gc
import hashlib
import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor.storage import remote
from streaming_tar_compressor.storage.location import RemotePrefix, parse_prefix
from streaming_tar_compressor.storage.remote import RemoteChunkSource
from streaming_tar_compressor.storage.store import ObstoreStore

CHUNK = 16 * 1024
WAIT = 30.0  # seconds: far longer than any fetch here takes, short enough to fail a test


class WatchedStore(ObstoreStore):
    """The memory store, noting which chunk's range each GET asks for; ``hold`` makes every
    GET of one part wait until a GET of another part has been asked for."""

    def __init__(self, prefix: RemotePrefix) -> None:
        super().__init__(prefix)
        self.asked: list[str] = []
        self.hold: tuple[str, str] | None = None  # (held part, part whose request frees it)
        self._freed = threading.Event()

    def get_range(self, key: str, start: int, end: int) -> memoryview:
        self.asked.append(key)
        if self.hold is not None:
            held, freeing = self.hold
            if key == freeing:
                self._freed.set()
            elif key == held and not self._freed.wait(WAIT):
                raise AssertionError(f"{freeing} was not asked for while {held} was in flight")
        return super().get_range(key, start, end)


@pytest.fixture
def archive(make_tree: Callable[..., Path], tmp_path: Path) -> str:
    """A memory:// archive of several checked chunks of CHUNK bytes, one range each."""
    noise = random.Random(5)
    tree = make_tree({f"f{i}": noise.randbytes(30_000) for i in range(4)})
    prefix = f"memory:///prefetch/{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]}/a"
    stc.pack(tree, prefix, compression="none", chunk_size=CHUNK, block_size=8 * 1024)
    return prefix


def source_of(prefix: str) -> tuple[RemoteChunkSource, WatchedStore]:
    location = parse_prefix(prefix)
    assert isinstance(location, RemotePrefix)
    store = WatchedStore(location)
    return RemoteChunkSource(location, store), store


def stored(prefix: str, index: int) -> bytes:
    source, _ = source_of(prefix)
    chunk = source.chunks[index]
    return b"".join(remote.read_ranges(source._store, source.prefix, chunk, chunk.size))


def test_the_next_chunk_is_asked_for_while_this_one_is_still_in_flight(archive: str) -> None:
    source, store = source_of(archive)
    assert len(source.chunks) >= 4
    first, second = source.chunks[0].name, source.chunks[1].name
    store.hold = (first, second)
    data = b"".join(source.read(source.chunks[0]))
    assert data == stored(archive, 0)
    assert store.asked[:2] == [first, second]


def test_reads_that_jump_start_the_prefetch_again_where_they_land(archive: str) -> None:
    source, _ = source_of(archive)
    chunks = source.chunks
    assert b"".join(source.read(chunks[0])) == stored(archive, 0)
    assert b"".join(source.read(chunks[2])) == stored(archive, 2)
    assert b"".join(source.read(chunks[1])) == stored(archive, 1)
    assert b"".join(source.read(chunks[2])) == stored(archive, 2)
    assert b"".join(source.read(chunks[3])) == stored(archive, 3)


def test_a_source_that_goes_away_stops_its_prefetch(archive: str) -> None:
    source, _ = source_of(archive)
    assert b"".join(source.read(source.chunks[0])) == stored(archive, 0)
    assert any(thread.name == "stc-prefetch" for thread in threading.enumerate())
    del source
    gc.collect()
    assert not any(thread.name == "stc-prefetch" for thread in threading.enumerate())


def test_a_chunk_damaged_on_the_way_is_fetched_again_without_losing_the_next(
    archive: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, store = source_of(archive)
    damaged = source.chunks[1].name
    get_range = WatchedStore.get_range
    flips = [1]

    def flip_once(self: WatchedStore, key: str, start: int, end: int) -> memoryview:
        data = get_range(self, key, start, end)
        if key == damaged and flips:
            flips.pop()
            spoiled = bytearray(data)
            spoiled[0] ^= 1
            return memoryview(spoiled)
        return data

    monkeypatch.setattr(WatchedStore, "get_range", flip_once)
    for index, chunk in enumerate(source.chunks):
        assert b"".join(source.read(chunk)) == stored(archive, index)
    assert store.asked.count(damaged) == 2


def test_a_missing_part_is_reported_and_the_reads_go_on_past_it(archive: str) -> None:
    """A failed read leaves no prefetch behind that the next read would use: deep verify reports
    the missing part and still checks every chunk after it."""
    source, store = source_of(archive)
    missing = source.chunks[1].name
    store.delete(missing)
    report = stc.verify(archive, deep=True)
    assert report.problems[0] == f"{missing}: missing"
    assert report.chunks_checked == len(source.chunks) - 1
    assert not any("SHA-256" in problem for problem in report.problems)
    assert not any(thread.name == "stc-prefetch" for thread in threading.enumerate())


def test_a_chunk_damaged_in_the_store_is_listed_by_verify_and_restored_without_checks(
    archive: str, tmp_path: Path
) -> None:
    """Readers that check nothing themselves get what is stored (only an unpack's checked
    reads stop at a block that stays wrong): deep verify names the damage among its
    problems, and --no-verify restores what it can."""
    source, store = source_of(archive)
    damaged = source.chunks[1].name
    spoiled = bytearray(stored(archive, 1))
    spoiled[-1] ^= 1  # in file data: the tar stream itself stays readable
    store.put(damaged, bytes(spoiled))
    report = stc.verify(archive, deep=True)
    assert any(problem.startswith(f"{damaged}: corrupt") for problem in report.problems)
    assert stc.unpack(archive, tmp_path / "salvaged", verify_checksum=False).members > 0
    with pytest.raises(stc.ChecksumMismatchError, match=damaged):
        stc.unpack(archive, tmp_path / "checked")
