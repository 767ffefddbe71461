"""Event-loop lag and peak RSS of the asyncio API, each scenario in a fresh process.

A probe coroutine sleeps 5 ms in a loop and records how late it wakes; the worst lateness is
what any other coroutine (an HTTP server, say) would have suffered. Peak RSS is the process's
ru_maxrss, next to the RSS of the same process before the scenario started.

    .venv/bin/python benchmarks/aio_lag_memory.py --size-mib 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from streaming_tar_compressor import (
    StreamingTarCompressor,
    compress_with_chunks,
    decompress_from_chunks,
    read_manifest,
)

CHUNK = 50 * 2**20
SCENARIOS = ["pack-files", "unpack-files", "compress-to-chunks", "stream-unpack-64k"]


def build_corpus(root: Path, size_mib: int) -> None:
    """Half log-like text, half random bytes, in 8 MiB files."""
    rng = random.Random(300)
    root.mkdir(parents=True)
    words = [b"GET", b"POST", b"/api/items", b"200", b"404", b"session", b"cache", b"ms"]
    line_count = 0
    for i in range(size_mib // 8):
        with open(root / f"file-{i:03d}", "wb") as handle:
            if i % 2:
                handle.write(rng.randbytes(8 * 2**20))
                continue
            written = 0
            while written < 8 * 2**20:
                line_count += 1
                line = b"%d " % line_count + b" ".join(rng.choice(words) for _ in range(10))
                written += handle.write(line + b"\n")


async def with_probe(work: Callable[[], Awaitable[None]]) -> tuple[float, int]:
    """Runs ``work`` beside the probe; returns the worst lag in ms and the number of probes."""
    lags: list[float] = []

    async def probe() -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - started - 0.005)

    task = asyncio.create_task(probe())
    await work()
    task.cancel()
    return max(lags) * 1000, len(lags)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def scenario(name: str, work_dir: Path) -> dict[str, float | int | str]:
    corpus, prefix = work_dir / "corpus", work_dir / "packed" / "b"
    before = rss_mib()

    async def pack_files() -> None:
        await compress_with_chunks([corpus], prefix, "gzip", CHUNK, force=True)

    async def unpack_files() -> None:
        await decompress_from_chunks(prefix, work_dir / f"out-{name}")

    async def compress_to_chunks() -> None:
        compressor = StreamingTarCompressor("gzip", chunk_size=CHUNK)
        async for _, data in compressor.compress_to_chunks([corpus]):
            await asyncio.sleep(0.05)  # a consumer as slow as an upload
            del data

    async def stream_unpack() -> None:
        manifest = read_manifest(prefix)

        async def pieces() -> AsyncIterator[bytes]:
            for chunk in manifest.chunks:
                with open(prefix.parent / chunk.name, "rb") as handle:
                    while piece := handle.read(64 * 1024):
                        yield piece

        await StreamingTarCompressor().decompress_from_chunks(
            pieces(), work_dir / f"out-{name}", manifest=manifest
        )

    work = {
        "pack-files": pack_files,
        "unpack-files": unpack_files,
        "compress-to-chunks": compress_to_chunks,
        "stream-unpack-64k": stream_unpack,
    }[name]
    started = time.perf_counter()
    lag_ms, probes = await with_probe(work)
    seconds = time.perf_counter() - started
    return {
        "scenario": name,
        "worst_lag_ms": round(lag_ms, 1),
        "probes": probes,
        "seconds": round(seconds, 1),
        "rss_before_mib": round(before),
        "peak_rss_mib": round(rss_mib()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=300)
    parser.add_argument(
        "--work-dir", default="/dev/shm/stc-aio" if Path("/dev/shm").is_dir() else "/tmp/stc-aio"
    )
    parser.add_argument("--scenario", choices=SCENARIOS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work_dir = Path(args.work_dir)
    if args.scenario:
        print(json.dumps(asyncio.run(scenario(args.scenario, work_dir))))
        return
    shutil.rmtree(work_dir, ignore_errors=True)
    build_corpus(work_dir / "corpus", args.size_mib)
    print(f"corpus: {args.size_mib} MiB (half text, half random), chunks of 50 MiB, gzip\n")
    print("| scenario | seconds | worst loop lag ms | probes | RSS before MiB | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in SCENARIOS:
        done = subprocess.run(
            [sys.executable, __file__, "--scenario", name, "--work-dir", str(work_dir)],
            check=True,
            capture_output=True,
            text=True,
        )
        row = json.loads(done.stdout)
        print(
            f"| {name} | {row['seconds']} | {row['worst_lag_ms']} | {row['probes']} "
            f"| {row['rss_before_mib']} | {row['peak_rss_mib']} |"
        )
    shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
