"""Peak RSS of `stc pack` and `stc unpack` as inputs, files and chunks grow: it must not grow.

Each run is a fresh `stc` process; its peak RSS comes from wait4 (ru_maxrss). Inputs are
written in 1 MiB pieces (half compressible text, half random), never held in memory here.

    .venv/bin/python benchmarks/memory_scaling.py --max-gib 4
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

MIB = 2**20


def write_file(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    text = b"".join(b"%d GET /api/items/%d 200 %dms\n" % (i, i * 7, i % 97) for i in range(40_000))
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            piece = text[:MIB] if (written // MIB) % 2 == 0 else rng.randbytes(MIB)
            written += handle.write(piece[: size - written])


def write_many(root: Path, count: int) -> None:
    rng = random.Random(count)
    for i in range(count):
        folder = root / f"d{i // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.txt").write_bytes(b"x" * rng.randrange(0, 2048))


def run(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of one command, launched from this small process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return time.perf_counter() - started, usage.ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-gib", type=float, default=4)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--codec", default="gzip")
    parser.add_argument(
        "--work-dir",
        default="/dev/shm/stc-memory" if Path("/dev/shm").is_dir() else "/tmp/stc-memory",
    )
    args = parser.parse_args()
    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    stc = str(Path(sys.executable).with_name("stc"))
    cases: list[tuple[str, str]] = []
    sizes = [2**10, MIB, 64 * MIB, 2**30, int(args.max_gib * 2**30)]
    for size in sorted(set(sizes)):
        label = f"one file, {size / MIB:g} MiB"
        cases.append((label, f"file-{size}"))
    cases.append((f"{args.files:,} small files", "many"))
    print(f"codec {args.codec}; each row a fresh process; work dir {work}\n")
    print("| input | chunk size | pack s | pack peak RSS MiB | unpack s | unpack peak RSS MiB |")
    print("|---|---|---:|---:|---:|---:|")
    for label, name in cases:
        source = work / name
        source.mkdir(parents=True)
        if name == "many":
            write_many(source, args.files)
        else:
            write_file(source / "data.bin", int(name.split("-")[1]), seed=len(name))
        chunk_sizes = ["50M"] if name != f"file-{sizes[-1]}" else ["1M", "50M", "1G"]
        for chunk in chunk_sizes:
            prefix, out = work / "packed" / "s", work / "restored"
            pack = run(
                [
                    stc,
                    "pack",
                    str(source),
                    "-o",
                    str(prefix),
                    "-c",
                    args.codec,
                    "--chunk-size",
                    chunk,
                    "-q",
                    "--force",
                ]
            )
            unpack = run([stc, "unpack", str(prefix), "-C", str(out), "-q"])
            print(
                f"| {label} | {chunk} | {pack[0]:.1f} | {pack[1]} | {unpack[0]:.1f} | {unpack[1]} |"
            )
            shutil.rmtree(out)
            shutil.rmtree(work / "packed")
        shutil.rmtree(source)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
