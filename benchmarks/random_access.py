"""The member index's goals (README "Random access"), measured on this machine:

1. one 1 MiB file extracted from a ~10 GiB archive of 100,000 members (zstd, 4 MiB blocks):
   compressed blocks and index bytes read, and seconds, from a local folder; then the
   requests it costs from an S3 API server (moto, on 127.0.0.1);
2. ``stc list`` of 1,000,000 members from the index alone: seconds and peak RSS;
3. what building the index costs a pack: the CPU seconds its work takes against the pack's
   wall time, for the archive of 1. and for any ``--cost-tree`` (a tree of small files is
   the hard case: ~30 µs of pack a member). The frame thread's part (hashing and writing
   pages) is timed in the pack; the tar thread's (each member added to a page builder as
   its header is written, each page deflated as it is sealed) is timed by writing the
   tree's headers again with a builder, less the same loop without one.
   Taken because runs with and without the index differ by less than this machine's noise;
   a lower bound of the wall-clock cost (a thread may wait for the GIL the work holds).

The 99,999 other files are sparse (all zeros): the tar stream is 10 GiB, but neither the
sources nor the archive fill the disk.

    make bench-random-access
    .venv/bin/python benchmarks/random_access.py --members 20000   # a quicker look
    .venv/bin/python benchmarks/random_access.py --cost-tree ~/src --cost-only
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import streaming_tar_compressor as stc
from streaming_tar_compressor.core.manifest import Manifest
from streaming_tar_compressor.core.member_index import (
    ENTRIES_PER_PAGE,
    IndexWriter,
    PageBuilder,
    page_builder,
)
from streaming_tar_compressor.core.tar_writer import TarWriter
from streaming_tar_compressor.fs.walk import iter_entries
from streaming_tar_compressor.models import ChunkInfo, CompressionType, MemberKind, TarMember
from streaming_tar_compressor.pipeline.pack_index import PackIndexer
from streaming_tar_compressor.storage import random_access
from streaming_tar_compressor.storage.random_access import RandomAccess
from streaming_tar_compressor.storage.store import open_store

MIB = 2**20
TARGET_SIZE = MIB
# stc list PREFIX, then the peak RSS of this process since its exec (ru_maxrss would count
# the pages of the forking parent).
LIST_AND_REPORT_PEAK = """
import atexit, runpy, sys
def report():
    with open("/proc/self/status") as status:
        print(next(l for l in status if l.startswith("VmHWM")), file=sys.stderr)
atexit.register(report)
sys.argv = ["stc", "list", sys.argv[1]]
runpy.run_module("streaming_tar_compressor", run_name="__main__")
"""


def build_tree(root: Path, members: int, member_size: int) -> str:
    """``members - 1`` sparse files and one 1 MiB random file in the middle; its name."""
    for i in range(members):
        folder = root / f"d{i // 1000:04d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        path = folder / f"f{i % 1000:04d}"
        if i == members // 2:
            path.write_bytes(os.urandom(TARGET_SIZE))
            target = path
        else:
            with path.open("wb") as handle:
                handle.truncate(member_size)
    return str(target)


class Counted:
    """RandomAccess.read, counted per file kind (a wrapper: the reads happen as they are)."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, int]] = []
        real = RandomAccess.read

        def read(archive: RandomAccess, name: str, offset: int, length: int) -> bytes:
            self.reads.append((name, length))
            return real(archive, name, offset, length)

        RandomAccess.read = read  # type: ignore[method-assign]

    def total(self, suffix: str) -> tuple[int, int]:
        lengths = [length for name, length in self.reads if suffix in name]
        return len(lengths), sum(lengths)


def local_extract(prefix: Path, name: str, out: Path) -> dict[str, Any]:
    counted = Counted()
    started = time.perf_counter()
    result = stc.extract(prefix, [name], out)
    seconds = time.perf_counter() - started
    index_reads, index_bytes = counted.total(".index")
    return {
        "seconds": round(seconds, 3),
        "blocks_read": result.blocks_read,
        "chunk_bytes_read": result.compressed_bytes,
        "index_reads": index_reads,
        "index_bytes_read": index_bytes,
    }


def s3_extract(prefix: Path, name: str, out: Path) -> dict[str, Any]:
    """The archive's files uploaded to moto, then the one file extracted from there."""
    import logging

    from moto.server import ThreadedMotoServer  # a dev dependency, as in the tests

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
    )
    try:
        import boto3

        client = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1")
        client.create_bucket(Bucket="bench")
        for path in prefix.parent.iterdir():
            client.upload_file(str(path), "bench", path.name)
        calls: list[tuple[str, str]] = []

        class Counting:
            def __init__(self, store: Any) -> None:
                self._store = store

            def __getattr__(self, verb: str) -> Any:
                method = getattr(self._store, verb)

                def call(key: str, *args: Any, **kwargs: Any) -> Any:
                    calls.append((verb, key))
                    return method(key, *args, **kwargs)

                return call

        random_access.open_store = lambda where: Counting(open_store(where))  # type: ignore[assignment,return-value]
        started = time.perf_counter()
        stc.extract(f"s3://bench/{prefix.name}", [name], out)
        return {"seconds": round(time.perf_counter() - started, 3), "requests": len(calls),
                "calls": [f"{verb} {key}" for verb, key in calls]}  # fmt: skip
    finally:
        server.stop()


def list_million(root: Path, count: int) -> dict[str, Any]:
    """An archive of ``count`` members whose chunks are all gone: only its index is read."""
    root.mkdir()
    with (root / "m.index").open("wb") as out:
        writer = IndexWriter(out)
        for first in range(0, count, ENTRIES_PER_PAGE):
            writer.add([
                (TarMember(f"src{i // 10000:03d}/pkg{i // 100 % 100:02d}/module_{i:07d}.py",
                           MemberKind.FILE, i % 50_000, 0o644, 1_700_000_000 + i, 1000, 1000,
                           "user", "user"), i * 1024, i * 1024 + 512, b"")
                for i in range(first, min(count, first + ENTRIES_PER_PAGE))
            ])  # fmt: skip
        written = writer.finish()
    manifest = Manifest(
        compression=CompressionType.ZSTD,
        chunk_size=1,
        chunks=(ChunkInfo(0, "m.part0000", 1, hashlib.sha256(b"x").hexdigest()),),
        index=written.record("m.index", content_sha256=False),
    )
    (root / "m.manifest.json").write_text(manifest.to_json())
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LIST_AND_REPORT_PEAK, str(root / "m")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    peak = int(done.stderr.split()[-2])  # "VmHWM: N kB", the child's own high-water mark
    return {
        "members": count,
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(peak / 1024, 1),
        "index_bytes_per_member": round(written.size / count, 1),
    }


@contextlib.contextmanager
def timed_index_work() -> Iterator[list[float]]:
    """Sums the thread CPU seconds of PackIndexer's methods during a pack: the frame thread's
    part of the index's work."""
    spent = [0.0]
    originals = {n: getattr(PackIndexer, n) for n in ("add", "add_block", "finish")}

    def timed(method: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            started = time.thread_time()
            try:
                return method(*args)
            finally:
                spent[0] += time.thread_time() - started

        return run

    for name, method in originals.items():
        setattr(PackIndexer, name, timed(method))
    try:
        yield spent
    finally:
        for name, method in originals.items():
            setattr(PackIndexer, name, method)


def builder_seconds(tree: Path) -> float:
    """The tar thread's part of the index's work for ``tree``: its headers written with a
    page builder, as a pack writes them, less the same without one (the fastest of seven
    each: other work on the machine only adds time)."""
    members = [entry.member for entry in iter_entries([str(tree)], [])]

    def loop(builder: PageBuilder | None) -> float:
        writer = TarWriter()
        started = time.thread_time()
        for member in members:
            writer.header(member, builder)
        return time.thread_time() - started  # the last page is sealed in the pack's finish()

    runs = [(loop(page_builder()), loop(None)) for _ in range(7)]
    return min(run[0] for run in runs) - min(run[1] for run in runs)


def index_cost(tree: Path, out: Path, rounds: int) -> dict[str, Any]:
    """Packs ``tree`` (zstd, defaults) ``rounds`` times; the index's CPU against wall time."""
    adding = builder_seconds(tree)
    shares, walls, works = [], [], []
    for round_ in range(rounds):
        prefix = out / f"cost{round_}"
        with timed_index_work() as spent:
            started = time.perf_counter()
            result = stc.pack([str(tree)], str(prefix), compression="zstd")
            wall = time.perf_counter() - started
        for chunk in result.chunks:
            os.unlink(chunk.path)
        walls.append(wall)
        works.append(spent[0] + adding)
        shares.append(100 * (spent[0] + adding) / wall)
    return {
        "members": result.manifest.index.members,  # type: ignore[union-attr]
        "pack_seconds": [round(w, 2) for w in walls],
        "tar_thread_seconds": round(adding, 4),
        "index_cpu_seconds": [round(w, 4) for w in works],
        "index_share_percent_median": round(statistics.median(shares), 2),
        "index_share_percent": [round(s, 2) for s in shares],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--member-size", type=int, default=107 * 1024)
    parser.add_argument("--list-members", type=int, default=1_000_000)
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 part")
    parser.add_argument("--cost-tree", type=Path, action="append", default=[],
                        help="also measure the index's cost on packing this tree")  # fmt: skip
    parser.add_argument("--cost-rounds", type=int, default=3)
    parser.add_argument("--cost-only", action="store_true", help="measure the cost only")
    args = parser.parse_args()
    if args.cost_rounds < 1:
        parser.error("--cost-rounds must be at least 1")
    if args.cost_only and not args.cost_tree:
        parser.error("--cost-only measures the --cost-tree trees: name at least one")
    with tempfile.TemporaryDirectory(prefix="stc-random-access-") as work:
        base = Path(work)
        for number, tree in enumerate(args.cost_tree):
            cost = index_cost(tree, base / f"cost{number}", args.cost_rounds)
            print(f"index cost, {tree}:", cost)
        if args.cost_only:
            return
        target = build_tree(base / "tree", args.members, args.member_size)
        prefix = base / "out" / "big"
        started = time.perf_counter()
        result = stc.pack([str(base / "tree")], str(prefix), compression="zstd",
                          chunk_size=64 * MIB)  # fmt: skip
        pack_seconds = time.perf_counter() - started
        manifest = result.manifest
        print(f"packed {manifest.uncompressed_size / 2**30:.2f} GiB of tar, "
              f"{manifest.index.members} members, into {manifest.compressed_size / MIB:.1f} MiB "  # type: ignore[union-attr]
              f"in {pack_seconds:.1f} s; index {manifest.index.size / 1024:.0f} KiB")  # type: ignore[union-attr]  # fmt: skip
        name = target.lstrip("/")
        print("extract one 1 MiB file, local:", local_extract(prefix, name, base / "x"))
        if not args.no_s3:
            print("extract one 1 MiB file, S3:", s3_extract(prefix, name, base / "y"))
        print("stc list from the index:", list_million(base / "list", args.list_members))
        cost = index_cost(base / "tree", base / "cost", args.cost_rounds)
        print("index cost, this archive:", cost)


if __name__ == "__main__":
    main()
