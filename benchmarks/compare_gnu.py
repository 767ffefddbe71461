"""Pack and unpack a mixed tree with stc (every codec) and with GNU pipelines, in one run.

Prints wall time, throughput, output size and peak RSS of each command (the whole process
tree, from wait4). Timings belong here, never in unit tests.

    .venv/bin/python benchmarks/compare_gnu.py --size-mib 1024
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CODECS = ["gzip", "zstd", "lz4", "bzip2", "xz", "none"]
SYSTEM_SOURCES = [
    f"{sys.base_prefix}/lib/python{sys.version_info.major}.{sys.version_info.minor}",
    "/usr/include",
]
LIBRARY_DIR = "/usr/lib/x86_64-linux-gnu"


@dataclass(frozen=True)
class Run:
    label: str
    seconds: float
    max_rss_kib: int


def build_corpus(root: Path, size_mib: int) -> int:
    """~40 % source/docs, ~20 % shared libraries, ~20 % log-like text, ~20 % random bytes."""
    budget = size_mib * 2**20
    root.mkdir(parents=True)
    rng = random.Random(1127)
    used = _copy_files(SYSTEM_SOURCES, root / "src", budget * 40 // 100, lambda p: True)
    used += _copy_files([LIBRARY_DIR], root / "lib", budget * 20 // 100, lambda p: ".so" in p.name)
    logs = root / "logs"
    logs.mkdir()
    words = ["GET", "POST", "/api/v1/items", "200", "404", "user", "session", "ms", "cache"]
    for i in range(20):
        lines = [
            f"2026-11-27T{rng.randrange(24):02d}:{rng.randrange(60):02d} "
            + " ".join(rng.choice(words) for _ in range(12))
            for _ in range(2000)
        ]
        text = ("\n".join(lines) + "\n").encode()
        with open(logs / f"app-{i:02d}.log", "wb") as handle:
            target = budget * 20 // 100 // 20
            for _ in range(target // len(text) + 1):
                handle.write(text)
        used += (logs / f"app-{i:02d}.log").stat().st_size
    rand = root / "random"
    rand.mkdir()
    for i in range(10):
        with open(rand / f"blob-{i}.bin", "wb") as handle:
            for _ in range(budget * 20 // 100 // 10 // 2**20):
                used += handle.write(rng.randbytes(2**20))
    return used


def _copy_files(sources: list[str], dest: Path, budget: int, keep: object) -> int:
    used = 0
    for base in sources:
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                src = Path(dirpath) / name
                if src.is_symlink() or not src.is_file() or not keep(src):  # type: ignore[operator]
                    continue
                size = src.stat().st_size
                if used + size > budget:
                    return used
                target = dest / src.relative_to("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.copy2(src, target)
                except OSError:
                    continue
                used += size
    return used


def timed(label: str, command: str, cwd: Path) -> Run:
    """Runs a shell command; wait4 gives the peak RSS of the largest process in its tree."""
    started = time.perf_counter()
    process = subprocess.Popen(["bash", "-o", "pipefail", "-c", command], cwd=cwd)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{label} failed: {command}")
    return Run(label, seconds, usage.ru_maxrss)


def folder_size(path: Path, prefix: str) -> int:
    return sum(p.stat().st_size for p in path.glob(prefix + ".part*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument(
        "--workdir", default="/dev/shm/stc-bench" if Path("/dev/shm").is_dir() else "/tmp/stc-bench"
    )
    parser.add_argument("--codecs", default=",".join(CODECS))
    args = parser.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    corpus = work / "corpus"
    data_bytes = build_corpus(corpus, args.size_mib)
    counted = subprocess.run(
        "tar -cf - corpus | wc -c", shell=True, cwd=work, check=True, capture_output=True, text=True
    )
    tar_bytes = int(counted.stdout)
    floor = timed("floor", "true", work)
    stc = shlex.quote(str(Path(sys.executable).with_name("stc")))
    rows: list[tuple[str, Run, Run, int]] = []

    def measure(name: str, pack: str, unpack: str, prefix: str) -> None:
        out = work / "out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        packed = timed(f"{name} pack", pack, work)
        size = folder_size(out, prefix)
        shutil.rmtree(work / "restored", ignore_errors=True)
        (work / "restored").mkdir()
        unpacked = timed(f"{name} unpack", unpack, work)
        rows.append((name, packed, unpacked, size))
        shutil.rmtree(work / "restored")

    measure(
        "tar | gzip -6 | split -b 50M",
        "tar -cf - corpus | gzip -6 | split -b 50M -d -a 4 - out/g.part",
        "cat out/g.part* | gzip -d | tar -xf - -C restored",
        "g",
    )
    for codec in args.codecs.split(","):
        measure(
            f"stc -c {codec}",
            f"{stc} pack corpus -o out/s -c {codec} --chunk-size 50M -q",
            f"{stc} unpack out/s -C restored -q",
            "s",
        )

    print(
        f"corpus: {data_bytes / 2**20:.0f} MiB of files, tar stream {tar_bytes / 2**20:.0f} MiB;"
        f" {os.cpu_count()} cores; work dir {work}"
    )
    print(
        f"RSS is the largest process of each command's tree (wait4); the launching shell"
        f" alone reads {floor.max_rss_kib / 1024:.0f} MiB, a floor under every figure."
    )
    print()
    print(
        "| command | pack s | pack MB/s | unpack s | unpack MB/s | output MiB | ratio "
        "| pack RSS MiB | unpack RSS MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, packed, unpacked, size in rows:
        print(
            f"| `{name}` | {packed.seconds:.1f} | {tar_bytes / packed.seconds / 1e6:.0f} "
            f"| {unpacked.seconds:.1f} | {tar_bytes / unpacked.seconds / 1e6:.0f} "
            f"| {size / 2**20:.0f} | {tar_bytes / size:.3f} | {packed.max_rss_kib / 1024:.0f} "
            f"| {unpacked.max_rss_kib / 1024:.0f} |"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
