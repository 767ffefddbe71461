"""The asyncio API: seed signatures, streaming both ways, order, cancellation, loop lag."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streaming_tar_compressor as stc
from streaming_tar_compressor import (
    CompressionType,
    StreamingTarCompressor,
    compress_with_chunks,
    decompress_from_chunks,
)
from tests.helpers import build_tree, snapshot


def stc_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("stc-")]


async def no_stc_threads_soon() -> None:
    """Abandoned async generators are closed by the loop on its next turns."""
    for _ in range(200):
        if not stc_threads():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"threads left running: {stc_threads()}")


def restored(out: Path, tree: Path) -> Path:
    return out / tree.relative_to("/")


def looks_complete(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(".tmp")
    )


async def pieces(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    bounds = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    for a, b in itertools.pairwise(bounds):
        await asyncio.sleep(0)
        yield data[a:b]


def test_seed_functions_round_trip_with_positional_arguments(make_tree, tmp_path):
    tree = make_tree()
    single = tmp_path / "file.txt"
    single.write_bytes(b"single file\n")

    async def main() -> list[stc.ChunkInfo]:
        chunks = await compress_with_chunks(
            [str(tree) + "/", str(single)], str(tmp_path / "backup"), CompressionType.ZSTD, 30_000
        )
        await decompress_from_chunks(str(tmp_path / "backup"), str(tmp_path / "out" / "new"))
        return chunks

    chunks = asyncio.run(main())
    assert len(chunks) > 1
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(Path(c.path).stat().st_size == c.size for c in chunks)
    assert all(len(c.checksum) == 64 for c in chunks)
    assert snapshot(restored(tmp_path / "out" / "new", tree)) == snapshot(tree)
    assert (restored(tmp_path / "out" / "new", single)).read_bytes() == b"single file\n"


def test_stated_compression_must_match(make_tree, tmp_path):
    tree = make_tree()

    async def main() -> None:
        await compress_with_chunks([tree], tmp_path / "b")  # gzip by default
        await decompress_from_chunks(tmp_path / "b", tmp_path / "out", CompressionType.XZ)

    with pytest.raises(stc.CompressionMismatchError, match="gzip"):
        asyncio.run(main())


def test_progress_callbacks_plain_and_async(make_tree, tmp_path):
    tree = make_tree()
    plain: list[tuple[str, int]] = []
    awaited: list[tuple[str, int]] = []

    async def on_file(path: str, size: int) -> None:
        await asyncio.sleep(0)
        awaited.append((path, size))

    async def main() -> None:
        await compress_with_chunks(
            [tree], tmp_path / "b", progress_callback=lambda p, s: plain.append((p, s))
        )
        await decompress_from_chunks(tmp_path / "b", tmp_path / "out", progress_callback=on_file)

    asyncio.run(main())
    assert (str(tree / "a.txt"), 1200) in plain
    assert len(plain) == len(snapshot(tree)) + 1
    written = dict(awaited)
    assert written[str(tmp_path / "out" / tree.relative_to("/") / "a.txt")] == 1200
    assert len(awaited) == len(plain)


def test_compress_to_chunks_yields_the_same_stream_as_pack(make_tree, tmp_path):
    tree = make_tree()
    packed = stc.pack([tree], tmp_path / "b", compression="lz4", chunk_size=25_000)
    on_disk = [Path(c.path).read_bytes() for c in packed.chunks]
    compressor = StreamingTarCompressor(CompressionType.LZ4, chunk_size=25_000)

    async def main() -> list[tuple[int, bytes]]:
        return [item async for item in compressor.compress_to_chunks([tree])]

    streamed = asyncio.run(main())
    assert [i for i, _ in streamed] == list(range(len(on_disk)))
    assert all(isinstance(d, bytes) for _, d in streamed)
    assert all(len(d) == 25_000 for _, d in streamed[:-1])
    assert [d for _, d in streamed] == on_disk
    assert compressor.manifest is not None
    assert compressor.manifest.sha256 == packed.manifest.sha256


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(0, 200_000), max_size=30), codec=st.sampled_from(CompressionType))
def test_any_cutting_of_the_stream_restores_the_same_tree(tmp_path_factory, cuts, codec):
    base = tmp_path_factory.mktemp("cut")
    tree = build_tree(base / "src", {"a/x.txt": b"x" * 50_000, "b.bin": os.urandom(60_000)})
    result = stc.pack([tree], base / "b", compression=codec, chunk_size=30_000, block_size=32_768)
    stream = b"".join(Path(c.path).read_bytes() for c in result.chunks)

    async def main() -> None:
        compressor = StreamingTarCompressor()
        await compressor.decompress_from_chunks(
            pieces(stream, cuts), base / "plain", manifest=result.manifest
        )
        await compressor.decompress_from_chunks(pieces(stream, cuts), base / "nomanifest")

    asyncio.run(main())
    assert snapshot(restored(base / "plain", tree)) == snapshot(tree)
    assert snapshot(restored(base / "nomanifest", tree)) == snapshot(tree)


@pytest.mark.parametrize("form", ["object", "dict", "path", "prefix"])
def test_manifest_in_every_form_verifies_each_chunk(make_tree, tmp_path, form):
    tree = make_tree({f"f{i:02d}": os.urandom(4000) for i in range(20)}, links=False)
    result = stc.pack([tree], tmp_path / "b", compression="none", chunk_size=20_000)
    chunks = [Path(c.path).read_bytes() for c in result.chunks]
    bad = bytearray(chunks[2])
    bad[100] ^= 1
    chunks[2] = bytes(bad)
    manifest = {
        "object": result.manifest,
        "dict": json.loads(result.manifest.to_json()),
        "path": str(tmp_path / "b.manifest.json"),
        "prefix": tmp_path / "b",
    }[form]

    async def main() -> None:
        await StreamingTarCompressor().decompress_from_chunks(
            chunks, tmp_path / "out", manifest=manifest
        )

    with pytest.raises(stc.ChecksumMismatchError, match=r"b\.part0002"):
        asyncio.run(main())
    out = restored(tmp_path / "out", tree)
    complete = looks_complete(tmp_path / "out")
    assert not any(p.endswith(".tmp") for p in complete)
    for path in complete:
        name = Path(path).name
        assert (out / name).read_bytes() == (tree / name).read_bytes()
    assert 0 < len(complete) < 20
    assert not stc_threads()


def test_indexed_chunks_in_any_order_within_the_window(make_tree, tmp_path):
    tree = make_tree()
    result = stc.pack([tree], tmp_path / "b", compression="gzip", chunk_size=8_000)
    chunks = [(c.index, Path(c.path).read_bytes()) for c in result.chunks]
    order = list(range(len(chunks)))
    for start in range(0, len(order), 4):
        block = order[start : start + 4]
        random.Random(start).shuffle(block)
        order[start : start + 4] = block
    shuffled = [chunks[i] for i in order] + [chunks[0]]  # and an identical duplicate

    async def main() -> None:
        compressor = StreamingTarCompressor(reorder_window=4)
        await compressor.decompress_from_chunks(
            shuffled, tmp_path / "out", manifest=result.manifest
        )

    asyncio.run(main())
    assert snapshot(restored(tmp_path / "out", tree)) == snapshot(tree)


@pytest.mark.parametrize(
    ("mangle", "error", "index"),
    [
        (lambda c: c[:1] + c[3:], stc.MissingChunkError, 1),  # gap outgrows the window
        (lambda c: c[:-1], stc.MissingChunkError, None),  # last chunk never comes
        (lambda c: [*c[:2], (0, b"different")], stc.ChecksumMismatchError, 0),
    ],
)
def test_reordering_errors_name_the_chunk(make_tree, tmp_path, mangle, error, index):
    tree = make_tree()
    result = stc.pack([tree], tmp_path / "b", compression="gzip", chunk_size=8_000)
    chunks = [(c.index, Path(c.path).read_bytes()) for c in result.chunks]
    assert len(chunks) > 5

    async def main() -> None:
        compressor = StreamingTarCompressor(reorder_window=1)
        await compressor.decompress_from_chunks(
            mangle(chunks), tmp_path / "out", manifest=result.manifest
        )

    with pytest.raises(error) as info:
        asyncio.run(main())
    expected = len(chunks) - 1 if index is None else index
    assert str(expected) in str(info.value)


def test_the_first_file_exists_before_the_last_piece_arrives(make_tree, tmp_path):
    tree = make_tree({"first.txt": b"early bird\n", "zz-big.bin": os.urandom(400_000)}, links=False)
    result = stc.pack(
        [tree], tmp_path / "b", compression="zstd", chunk_size=50_000, block_size=16_384
    )
    stream = b"".join(Path(c.path).read_bytes() for c in result.chunks)
    first = restored(tmp_path / "out", tree) / "first.txt"
    seen_before_last: list[bool] = []

    async def slow_pieces() -> AsyncIterator[bytes]:
        for offset in range(0, len(stream), 10_000):
            if offset + 10_000 >= len(stream):
                seen_before_last.append(first.exists())
            yield stream[offset : offset + 10_000]

    async def main() -> None:
        await StreamingTarCompressor().decompress_from_chunks(
            slow_pieces(), tmp_path / "out", manifest=result.manifest
        )

    asyncio.run(main())
    assert seen_before_last == [True]
    assert first.read_bytes() == b"early bird\n"


def test_leaving_compress_to_chunks_early_stops_every_thread(make_tree, tmp_path):
    tree = make_tree({"big.bin": os.urandom(3_000_000)}, links=False)

    async def main() -> None:
        compressor = StreamingTarCompressor(chunk_size=100_000, block_size=65_536)
        async for index, _ in compressor.compress_to_chunks([tree]):
            assert index == 0
            break
        await no_stc_threads_soon()
        taken = 0
        async with contextlib.aclosing(compressor.compress_to_chunks([tree])) as chunks:
            async for _ in chunks:
                taken += 1
                break
        assert taken == 1
        assert not stc_threads()  # aclosing closes at once: no waiting needed

    asyncio.run(main())


def test_cancelled_pack_leaves_no_partial_chunk_and_no_thread(make_tree, tmp_path):
    tree = make_tree({"big.bin": os.urandom(20_000_000)}, links=False)

    async def main() -> None:
        task = asyncio.create_task(
            compress_with_chunks([tree], tmp_path / "arc" / "b", "xz", 1_000_000)
        )
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not stc_threads()

    asyncio.run(main())
    names = os.listdir(tmp_path / "arc")
    assert not [n for n in names if n.endswith(".tmp")]
    # What is there is a checkpoint to resume from, never a manifest that claims completeness.
    if "b.manifest.json" in names:
        manifest = json.loads((tmp_path / "arc" / "b.manifest.json").read_text())
        assert manifest["complete"] is False
        assert {c["name"] for c in manifest["chunks"]} <= set(names)
    assert "b.sha256" not in names


def test_a_failing_source_iterator_leaves_no_complete_looking_partial_file(make_tree, tmp_path):
    tree = make_tree({"big.bin": os.urandom(500_000)}, links=False)
    result = stc.pack([tree], tmp_path / "b", compression="none", chunk_size=1_000_000)
    stream = Path(result.chunks[0].path).read_bytes()

    async def broken() -> AsyncIterator[bytes]:
        yield stream[:300_000]
        raise ConnectionError("download failed")

    async def main() -> None:
        await StreamingTarCompressor().decompress_from_chunks(broken(), tmp_path / "out")

    with pytest.raises(ConnectionError):
        asyncio.run(main())
    assert not (restored(tmp_path / "out", tree) / "big.bin").exists()
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(".tmp")]
    assert not stc_threads()


def test_cancelled_unpack_stops_cleanly(make_tree, tmp_path):
    tree = make_tree({"big.bin": os.urandom(2_000_000)}, links=False)
    result = stc.pack([tree], tmp_path / "b", compression="gzip", chunk_size=100_000)
    chunks = [Path(c.path).read_bytes() for c in result.chunks]

    async def trickle() -> AsyncIterator[bytes]:
        for chunk in chunks:
            await asyncio.sleep(0.01)
            yield chunk

    async def main() -> None:
        task = asyncio.create_task(
            StreamingTarCompressor().decompress_from_chunks(
                trickle(), tmp_path / "out", manifest=result.manifest
            )
        )
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not stc_threads()

    asyncio.run(main())
    assert not (restored(tmp_path / "out", tree) / "big.bin").exists()


def test_sync_twins_give_the_same_results(make_tree, tmp_path):
    tree = make_tree()
    compressor = StreamingTarCompressor(CompressionType.ZSTD, chunk_size=20_000)
    chunks = list(compressor.iter_chunks([tree]))
    assert compressor.manifest is not None
    compressor.unpack_chunks(
        [data for _, data in chunks], tmp_path / "out", manifest=compressor.manifest
    )
    assert snapshot(restored(tmp_path / "out", tree)) == snapshot(tree)


def test_pack_and_unpack_never_stall_the_loop(tmp_path):
    tree = tmp_path / "src"
    tree.mkdir()
    rng = random.Random(5)
    for i in range(6):
        (tree / f"text-{i}.log").write_bytes(
            b"".join(
                b"%d GET /api/items/%d 200\n" % (j, rng.randrange(10**6)) for j in range(300_000)
            )
        )
        (tree / f"random-{i}.bin").write_bytes(rng.randbytes(4_000_000))
    lags: list[float] = []

    async def probe() -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - started - 0.005)

    async def main() -> None:
        task = asyncio.create_task(probe())
        compressor = StreamingTarCompressor(CompressionType.GZIP, chunk_size=8 * 2**20)
        chunks = [data async for _, data in compressor.compress_to_chunks([tree])]
        await compress_with_chunks([tree], tmp_path / "b", "zstd", 8 * 2**20)
        await decompress_from_chunks(tmp_path / "b", tmp_path / "out1")
        await compressor.decompress_from_chunks(
            chunks, tmp_path / "out2", manifest=compressor.manifest
        )
        task.cancel()

    asyncio.run(main())
    assert len(lags) > 50
    assert max(lags) < 0.1, f"worst lag {max(lags) * 1000:.1f} ms"


def test_in_memory_chunks_can_be_named_like_a_prefix(make_tree, tmp_path):
    tree = make_tree()
    compressor = StreamingTarCompressor(chunk_size=20_000)

    async def main() -> None:
        async for index, data in compressor.compress_to_chunks([tree], name="nightly"):
            (tmp_path / f"nightly.part{index:04d}").write_bytes(data)
        assert compressor.manifest is not None
        (tmp_path / "nightly.manifest.json").write_text(compressor.manifest.to_json())
        await decompress_from_chunks(tmp_path / "nightly", tmp_path / "out")

    asyncio.run(main())
    assert snapshot(restored(tmp_path / "out", tree)) == snapshot(tree)


def test_cancelling_twice_during_a_slow_async_callback_neither_hangs_nor_leaks(make_tree, tmp_path):
    tree = make_tree({f"f{i}": b"x" for i in range(50)}, links=False)
    entered = asyncio.Event()

    async def slow(path: str, size: int) -> None:
        entered.set()
        await asyncio.sleep(0.2)

    async def main() -> None:
        task = asyncio.create_task(
            compress_with_chunks([tree], tmp_path / "b", progress_callback=slow)
        )
        await entered.wait()
        task.cancel()
        await asyncio.sleep(0.01)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=10)
        assert done, "the call hung after two cancellations"
        assert task.cancelled()
        assert not stc_threads()

    asyncio.run(main())


def test_an_error_in_a_plain_callback_for_the_last_file_is_raised(make_tree, tmp_path):
    tree = make_tree({"only.txt": b"x"}, links=False)

    def fail_on_last(path: str, size: int) -> None:
        if path.endswith("private.txt"):  # the last member of this tree
            raise RuntimeError("callback failed")

    async def main() -> None:
        await compress_with_chunks([tree], tmp_path / "b", progress_callback=fail_on_last)

    with pytest.raises(RuntimeError, match="callback failed"):
        asyncio.run(main())
