"""Measure candidate codec libraries on this machine, to choose them by numbers, not by lore.

Each codec compresses a deterministic, tree-like corpus in independent blocks, one fresh
compressor per block, as the pipeline does; with 1 and 2 worker threads, since the pipeline's
pool only scales if the library releases the GIL. Prints a Markdown table for the README.

Run: ``make bench-codecs`` or ``python benchmarks/codec_libraries.py [--size MIB] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import random
import string
import struct
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from types import ModuleType

MIB = 2**20
BLOCK_SIZE = 4 * MIB  # the pipeline's default block
BZIP2_BLOCK_SIZE = 900_000  # bzip2 -9 works in 900 kB blocks anyway
XZ_BLOCK_SIZE = 8 * MIB  # xz -6's dictionary size
XZ_CORPUS_MIB = 16  # xz -6 runs at a few MB/s: a full corpus would dominate the run time
THREADS = 2
REPEATS = 3  # best of: the least disturbed run is the closest to the library's own speed
SEED = 20240501
RAW_DEFLATE = -15  # zlib wbits: raw deflate, 32 KiB window, as the gzip framing writes it
# Share of the corpus per kind of data, like a source tree with a few binaries and archives.
MIX = {"text": 0.4, "source": 0.2, "binary": 0.2, "random": 0.2}


@dataclass(frozen=True)
class Candidate:
    """One library at one level; ``decompress`` is None for checksums (no ratio either)."""

    codec: str
    library: str
    level: str
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes] | None = None
    block_size: int = BLOCK_SIZE
    small_corpus: bool = False  # measured on the XZ_CORPUS_MIB corpus: too slow for the full one


@dataclass(frozen=True)
class Result:
    """Throughputs in MB/s (10**6 bytes of uncompressed input per second of wall time)."""

    codec: str
    library: str
    level: str
    block_size: int
    corpus_bytes: int
    compress_1: float
    compress_2: float
    decompress_1: float | None
    ratio: float | None


# --- corpus --------------------------------------------------------------------------------


def _vocabulary(rng: random.Random, count: int) -> list[str]:
    """Pseudo-words of 2..10 letters; used with Zipf weights, like natural text."""
    return [
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 10))) for _ in range(count)
    ]


def _zipf_weights(count: int) -> list[float]:
    """Cumulative 1/rank weights, so a few words are common and most are rare."""
    total, cumulative = 0.0, []
    for rank in range(1, count + 1):
        total += 1 / rank
        cumulative.append(total)
    return cumulative


def _text(rng: random.Random, size: int, words: list[str], weights: list[float]) -> bytes:
    """Half prose, half log lines: the bulk of documentation, data and logs in a tree."""
    chosen = rng.choices(words, cum_weights=weights, k=size // 14)
    prose = ".\n".join(" ".join(chosen[i : i + 12]) for i in range(0, len(chosen), 12)).encode()
    levels = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")
    services = rng.sample(words, 12)
    lines, length, stamp = [], len(prose), 1_700_000_000.0
    while length < size:
        stamp += rng.expovariate(20)
        message = " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(3, 10)))
        line = (
            f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(stamp))}.{int(stamp % 1 * 1000):03d}Z"
            f" {rng.choice(levels)} [{rng.choice(services)}] {message}"
            f" id={rng.getrandbits(32):08x} took={rng.randint(0, 999)}ms\n"
        )
        lines.append(line)
        length += len(line)
    return (prose + "".join(lines).encode())[:size]


def _source(rng: random.Random, size: int, words: list[str], weights: list[float]) -> bytes:
    """Small functions from a few templates with varied names, as in a code base."""

    def name() -> str:
        return "_".join(rng.choices(words, cum_weights=weights, k=rng.randint(1, 3)))

    parts, length = [], 0
    while length < size:
        args = [name() for _ in range(rng.randint(1, 4))]
        var, first = name(), args[0]
        body = [
            f"def {name()}({', '.join(args)}):",
            f'    """{" ".join(rng.choices(words, cum_weights=weights, k=8)).capitalize()}."""',
            f"    {var} = {first}.{name()}({', '.join(args[1:])})",
        ]
        for _ in range(rng.randint(1, 6)):
            line = rng.choice(
                (
                    f"    if {var} is None:\n        raise ValueError('{name()}')",
                    f"    for item in {first}:\n        {var} += item * {rng.randint(0, 64)}",
                    f"    {var} = {name()}({var}, {rng.choice(args)})",
                    f"    # {' '.join(rng.choices(words, cum_weights=weights, k=6))}",
                )
            )
            body.append(line)
        body.append(f"    return {var}\n\n")
        part = "\n".join(body)
        parts.append(part)
        length += len(part)
    return "".join(parts).encode()[:size]


def _binary(rng: random.Random, size: int, words: list[str], weights: list[float]) -> bytes:
    """Machine-code-like opcode runs, symbol records, string tables and zero padding."""
    opcodes = [rng.randbytes(rng.randint(1, 7)) for _ in range(300)]
    op_weights = _zipf_weights(len(opcodes))
    symbol = struct.Struct("<QIHBB")
    parts, length, address = [], 0, 0x400000
    while length < size:
        section = rng.random()
        if section < 0.5:
            part = b"".join(
                rng.choices(opcodes, cum_weights=op_weights, k=rng.randint(2000, 20000))
            )
        elif section < 0.8:
            records = []
            for _ in range(rng.randint(200, 2000)):
                address += rng.choice((16, 16, 32, 48, 64, 128, 256))
                records.append(
                    symbol.pack(address, rng.getrandbits(20), rng.choice((0, 1, 2, 8)), 0x12, 0)
                )
            part = b"".join(records)
        elif section < 0.95:
            part = b"\0".join(w.encode() for w in rng.choices(words, cum_weights=weights, k=5000))
        else:
            part = bytes(rng.choice((512, 4096, 16384)))
        parts.append(part)
        length += len(part)
    return b"".join(parts)[:size]


def build_corpus(size: int, seed: int = SEED) -> bytes:
    """Interleave file-sized pieces of each kind, so every block sees a tree-like mix."""
    rng = random.Random(seed)
    words = _vocabulary(rng, 5000)
    weights = _zipf_weights(len(words))
    generators = {
        "text": partial(_text, rng, words=words, weights=weights),
        "source": partial(_source, rng, words=words, weights=weights),
        "binary": partial(_binary, rng, words=words, weights=weights),
        "random": rng.randbytes,
    }
    pieces = []
    for kind, share in MIX.items():
        data = generators[kind](int(size * share))
        start = 0
        while start < len(data):
            end = start + int(2 ** rng.uniform(12, 19))  # 4 KiB .. 512 KiB, log-uniform
            pieces.append(data[start:end])
            start = end
    rng.shuffle(pieces)
    corpus = b"".join(pieces)
    return corpus + rng.randbytes(size - len(corpus))  # int() rounding left a few bytes short


# --- candidates ----------------------------------------------------------------------------


def _deflate_compress(module: ModuleType, level: int, block: bytes) -> bytes:
    deflater = module.compressobj(level, module.DEFLATED, RAW_DEFLATE)
    return deflater.compress(block) + deflater.flush(module.Z_FULL_FLUSH)


def _deflate_decompress(module: ModuleType, data: bytes) -> bytes:
    return module.decompressobj(RAW_DEFLATE).decompress(data)


def _deflate(module: ModuleType, library: str, levels: range | tuple[int, ...]) -> list[Candidate]:
    """Raw deflate ended by a full flush, as each block of the gzip framing is written."""
    decompress = partial(_deflate_decompress, module)
    return [
        Candidate(
            "gzip", library, str(level), partial(_deflate_compress, module, level), decompress
        )
        for level in levels
    ]


def load_zlib() -> tuple[str, list[Candidate]]:
    import zlib

    return f"stdlib, zlib {zlib.ZLIB_RUNTIME_VERSION}", _deflate(zlib, "zlib", (1, 6))


def load_zlib_ng() -> tuple[str, list[Candidate]]:
    from zlib_ng import zlib_ng

    version = f"{importlib.metadata.version('zlib-ng')}, zlib-ng {zlib_ng.ZLIBNG_VERSION}"
    return version, _deflate(zlib_ng, "zlib-ng", (1, 6))


def load_isal() -> tuple[str, list[Candidate]]:
    import isal
    from isal import isal_zlib

    version = f"{importlib.metadata.version('isal')}, ISA-L {isal.ISAL_VERSION}"
    return version, _deflate(isal_zlib, "isal", range(4))


def _zstandard_compress(zstandard: ModuleType, level: int, block: bytes) -> bytes:
    # A fresh compressor per block: instances are not thread-safe, and the pipeline does this.
    return zstandard.ZstdCompressor(level=level, write_checksum=True).compress(block)


def _zstandard_decompress(zstandard: ModuleType, data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompress(data)


def load_zstandard() -> tuple[str, list[Candidate]]:
    import zstandard

    version = f"{zstandard.__version__}, libzstd {'.'.join(map(str, zstandard.ZSTD_VERSION))}"
    decompress = partial(_zstandard_decompress, zstandard)
    return version, [
        Candidate(
            "zstd",
            "zstandard",
            str(level),
            partial(_zstandard_compress, zstandard, level),
            decompress,
        )
        for level in (1, 3)
    ]


def load_pyzstd() -> tuple[str, list[Candidate]]:
    import pyzstd

    version = f"{pyzstd.__version__}, libzstd {pyzstd.zstd_version}"
    # pyzstd >= 0.18 is a layer over backports.zstd; say so, it explains its figures.
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        version += f", via backports.zstd {importlib.metadata.version('backports.zstd')}"
    candidates = []
    for level in (1, 3):
        # The same frames as zstandard's: level plus a content checksum.
        options = {pyzstd.CParameter.compressionLevel: level, pyzstd.CParameter.checksumFlag: 1}
        compress = partial(pyzstd.compress, level_or_option=options)
        candidates.append(Candidate("zstd", "pyzstd", str(level), compress, pyzstd.decompress))
    return version, candidates


def load_lz4() -> tuple[str, list[Candidate]]:
    import lz4
    import lz4.frame

    compress = partial(lz4.frame.compress, compression_level=0, content_checksum=True)
    version = f"{lz4.__version__}, liblz4 {lz4.library_version_string()}"
    return version, [Candidate("lz4", "lz4", "0", compress, lz4.frame.decompress)]


def load_bz2() -> tuple[str, list[Candidate]]:
    import bz2

    compress = partial(bz2.compress, compresslevel=9)
    return "stdlib", [Candidate("bzip2", "bz2", "9", compress, bz2.decompress, BZIP2_BLOCK_SIZE)]


def load_lzma() -> tuple[str, list[Candidate]]:
    import lzma

    filters = [{"id": lzma.FILTER_LZMA2, "preset": 6}]
    compress = partial(lzma.compress, format=lzma.FORMAT_RAW, filters=filters)
    decompress = partial(lzma.decompress, format=lzma.FORMAT_RAW, filters=filters)
    xz = Candidate("xz", "lzma", "6", compress, decompress, XZ_BLOCK_SIZE, small_corpus=True)
    return "stdlib", [xz]


def load_checksums() -> tuple[str, list[Candidate]]:
    """Context: every chunk is SHA-256-checked and gzip needs a CRC-32, on the same threads."""
    import hashlib
    import zlib

    return "stdlib", [
        Candidate("(sha256)", "hashlib", "-", lambda block: hashlib.sha256(block).digest()),
        Candidate("(crc32)", "zlib", "-", lambda block: zlib.crc32(block).to_bytes(4, "little")),
    ]


LOADERS: dict[str, Callable[[], tuple[str, list[Candidate]]]] = {
    "zlib": load_zlib,
    "zlib-ng": load_zlib_ng,
    "isal": load_isal,
    "zstandard": load_zstandard,
    "pyzstd": load_pyzstd,
    "lz4": load_lz4,
    "bz2": load_bz2,
    "lzma": load_lzma,
    "hashlib/zlib checksums": load_checksums,
}


# --- measuring -----------------------------------------------------------------------------


def best_time(run: Callable[[], object]) -> float:
    """The shortest of REPEATS wall-clock runs."""
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def measure(candidate: Candidate, corpus: bytes, pool: ThreadPoolExecutor) -> Result:
    """Compress (1 and THREADS threads), decompress (1 thread) and check the round trip."""
    size = candidate.block_size
    blocks = [corpus[i : i + size] for i in range(0, len(corpus), size)]
    outputs: list[bytes] = []

    def compress_serial() -> None:
        outputs[:] = [candidate.compress(block) for block in blocks]

    compress_1 = best_time(compress_serial)
    compress_2 = best_time(lambda: list(pool.map(candidate.compress, blocks)))
    decompress_1: float | None = None
    ratio: float | None = None
    if candidate.decompress is not None:
        decompress = candidate.decompress
        restored: list[bytes] = []

        def decompress_serial() -> None:
            restored[:] = [decompress(data) for data in outputs]

        decompress_1 = len(corpus) / best_time(decompress_serial) / 1e6
        if restored != blocks:
            raise AssertionError(f"{candidate.library} {candidate.level}: round trip differs")
        ratio = len(corpus) / sum(map(len, outputs))
    return Result(
        candidate.codec,
        candidate.library,
        candidate.level,
        size,
        len(corpus),
        len(corpus) / compress_1 / 1e6,
        len(corpus) / compress_2 / 1e6,
        decompress_1,
        ratio,
    )


# --- reporting -----------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _speed(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def markdown_table(results: list[Result]) -> Iterator[str]:
    yield (
        "| codec | library | level | compress MB/s (1 thr) | (2 thr) | decompress MB/s | ratio |"
    )
    yield "|---|---|---|--:|--:|--:|--:|"
    for r in results:
        ratio = "-" if r.ratio is None else f"{r.ratio:.3f}"
        speeds = " | ".join(map(_speed, (r.compress_1, r.compress_2, r.decompress_1)))
        yield f"| {r.codec} | {r.library} | {r.level} | {speeds} | {ratio} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="corpus size in MiB (default 64)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    header = {
        "python": sys.version.split()[0],
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "corpus_mib": args.size,
        "xz_corpus_mib": min(args.size, XZ_CORPUS_MIB),
        "repeats": REPEATS,
        "threads": THREADS,
    }
    print(
        f"Python {header['python']} ({platform.python_implementation()}),"
        f" CPU: {header['cpu']}, os.cpu_count() = {header['cpu_count']}"
    )
    versions: dict[str, str] = {}
    skipped: dict[str, str] = {}
    candidates: list[Candidate] = []
    for name, load in LOADERS.items():
        try:
            versions[name], found = load()
        except ImportError as exc:
            skipped[name] = f"{type(exc).__name__}: {exc}"
            print(f"skipped {name}: not installed ({skipped[name]})")
            continue
        candidates += found
        print(f"- {name}: {versions[name]}")

    started = time.perf_counter()
    corpus = build_corpus(args.size * MIB)
    xz_corpus = build_corpus(header["xz_corpus_mib"] * MIB)
    print(
        f"Corpus: {args.size} MiB, seeded, built in {time.perf_counter() - started:.1f} s;"
        f" {', '.join(f'{share:.0%} {kind}' for kind, share in MIX.items())}."
    )
    print(
        f"Blocks: {BLOCK_SIZE // MIB} MiB, one fresh compressor each; bzip2 {BZIP2_BLOCK_SIZE:,} B;"
        f" xz {XZ_BLOCK_SIZE // MIB} MiB on a separate {header['xz_corpus_mib']} MiB corpus of"
        " the same mix (xz is slow)."
    )
    print(
        f"MB/s = 10**6 uncompressed bytes per second of wall time, best of {REPEATS} runs;"
        f" 2 thr = a ThreadPoolExecutor of {THREADS} over the blocks. Other load on the machine"
        " lowers the figures."
    )

    results = []
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for candidate in candidates:
            started = time.perf_counter()
            data = xz_corpus if candidate.small_corpus else corpus
            results.append(measure(candidate, data, pool))
            print(
                f"  measured {candidate.library} {candidate.level}"
                f" in {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )

    print()
    print("\n".join(markdown_table(results)))
    if args.json:
        document = {
            **header,
            "versions": versions,
            "skipped": skipped,
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
