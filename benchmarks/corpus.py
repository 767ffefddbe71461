"""Deterministic benchmark corpora, written in pieces so that no process holds a corpus in memory.

Kinds (same seed and sizes, same bytes; only the copied shared libraries depend on the machine):

- ``mixed``: ~40 % small source-like files in nested folders, ~20 % medium binaries, ~20 %
  log-like text, ~20 % random bytes: a tree like the ones people back up.
- ``small-files``: many files of 0-8 KiB, where per-member costs dominate.
- ``big-file``: one large file of text, struct-like and random pieces: the pure streaming rate.
- ``random``: incompressible bytes only, where compression can only cost time.

``bench.py`` runs this as a child process (``python corpus.py KIND DEST ...``) so that its own
peak RSS, which every measured child inherits, stays small. It prints ``{"files", "bytes"}``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

KINDS = ("mixed", "small-files", "big-file", "random")
MIB = 2**20
PIECE = MIB  # write granularity: the largest buffer any generator holds
LIBRARY_DIR = Path("/usr/lib/x86_64-linux-gnu")
# Medium binaries only: tiny ones belong to the small-file share, huge ones skew the mix.
LIBRARY_MIN = 16 * 1024
LIBRARY_MAX = 16 * MIB
SYLLABLES = [
    "ar", "be", "co", "da", "el", "fi", "ga", "hu", "in", "jo", "ka", "lo", "me", "ni", "or",
    "pa", "qu", "ri", "st", "tu", "ul", "va", "we", "xi", "yo", "ze", "buf", "ptr", "len", "cfg",
]  # fmt: skip
PY_LINES = [
    "import {a}",
    "from {a}.{b} import {c}",
    "",
    "",
    "class {A}({B}):",
    '    """{s}."""',
    "    def {a}_{b}(self, {c}: {T}, {d}: int = {n}) -> {T}:",
    "        {a} = self.{b}.{c}({d}, {n})",
    "        if {a} is None:",
    '            raise {A}Error(f"{s}: {{{b}!r}}")',
    "        for {a} in {b}.{c}():",
    "            {a}.{b}[{c}] += {n}",
    "        return {a}",
    "    # {s}",
    "{A}_{B} = {n}",
]
C_LINES = [
    "#include <{a}/{b}.h>",
    "#define {A}_{B} {n}",
    "",
    "/* {s}. */",
    "static int {a}_{b}(struct {c} *{d}, size_t {e})",
    "{{",
    "\tint {a} = {n};",
    "\t{a}->{b} = {c}_{d}({e}, {n});",
    "\tif ({a} < {n} || !{b})",
    "\t\treturn -E{A};",
    "\tfor (size_t i = 0; i < {a}->{b}; i++)",
    "\t\t{a}[i] = {b}[i] ^ 0x{h};",
    "\treturn {a};",
    "}}",
]
DOC_LINES = [
    "# {A} {B}",
    "",
    "{s}.",
    "{s}, {a} {b}.",
    "- `{a}_{b}`: {s}.",
    "- `{a}`: {s} ({n} by default).",
    "    {a} --{b} {n} {c}/",
    "",
]
STYLES = {".py": PY_LINES, ".c": C_LINES, ".md": DOC_LINES}
LOG_LEVELS = ["INFO"] * 12 + ["DEBUG"] * 6 + ["WARN"] * 2 + ["ERROR"]
LOG_ROUTES = ["/api/v1/items", "/api/v1/users", "/login", "/static/app.js", "/healthz", "/search"]
LOG_STATUS = ["200"] * 20 + ["304", "404", "500", "201"]


@dataclass(frozen=True)
class Stats:
    files: int
    bytes: int


class Writer:
    """Counts what it writes: the corpus size is what lands on disk, not what was planned."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = 0
        self.bytes = 0

    def _path(self, relative: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        self.files += 1
        return path

    def file(self, relative: str, data: bytes) -> None:
        self.bytes += self._path(relative).write_bytes(data)

    def stream(self, relative: str, pieces: Iterable[bytes]) -> None:
        with open(self._path(relative), "wb") as handle:
            for piece in pieces:
                self.bytes += handle.write(piece)

    def copy(self, source: Path, relative: str) -> None:
        path = self._path(relative)
        shutil.copyfile(source, path)
        self.bytes += path.stat().st_size


def pieces(size: int, make: Callable[[int], bytes]) -> Iterator[bytes]:
    """``size`` bytes as calls of at most PIECE bytes each: the largest buffer ever held."""
    for offset in range(0, size, PIECE):
        yield make(min(PIECE, size - offset))


class Generator:
    """Every kind of content, all drawn from one seeded ``random.Random``."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        names: set[str] = set()
        while len(names) < 3000:
            names.add("".join(rng.choices(SYLLABLES, k=rng.randint(1, 4))))
        self.names = sorted(names)
        self.words = rng.sample(self.names, 2000)  # most frequent first
        # Zipf word frequencies (log-uniform rank), as in prose; indexed by random uint16.
        self.word_table = [
            self.words[int(len(self.words) ** rng.random()) - 1]
            + rng.choice(["", "", "", "", "", "", ",", ".\n"])
            for _ in range(65536)
        ]
        self.log_clock = 1_700_000_000.0

    def source(self, suffix: str, size: int) -> bytes:
        """Code or docs: templates in order, some skipped, over a per-file set of identifiers."""
        rng = self.rng
        local = rng.sample(self.names, 24)
        vocabulary = local + self.words[:40]
        numbers = [0, 1, 2, 8, 16, 64, 4096, rng.randrange(1000), rng.randrange(1000)]
        types = ["int", "str", "bytes", "Path", local[0].capitalize()]
        out: list[str] = []
        used = 0
        while used < size:
            for template in STYLES[suffix]:
                if rng.random() < 0.3:
                    continue
                a, b, c, d, e = rng.choices(local, k=5)
                line = template.format(
                    a=a,
                    b=b,
                    c=c,
                    d=d,
                    e=e,
                    A=a.capitalize(),
                    B=b.capitalize(),
                    T=rng.choice(types),
                    n=rng.choice(numbers),
                    h=f"{rng.getrandbits(8):02x}",
                    s=" ".join(rng.choices(vocabulary, k=rng.randint(3, 9)))
                    if "{s}" in template
                    else "",
                )
                out.append(line)
                used += len(line) + 1
        return ("\n".join(out) + "\n").encode()[:size]

    def prose(self, size: int) -> bytes:
        """Word-level text at C speed, for the big file."""
        indices = memoryview(self.rng.randbytes(size // 2 + 2)).cast("H")
        return " ".join(map(self.word_table.__getitem__, indices)).encode()[:size]

    def log(self, size: int) -> bytes:
        rng = self.rng
        out: list[str] = []
        used = 0
        while used < size:
            self.log_clock += rng.expovariate(200.0)
            seconds = int(self.log_clock)
            line = (
                f"{seconds} {int(self.log_clock % 1 * 1e6):06d} {rng.choice(LOG_LEVELS)}"
                f" [worker-{rng.randrange(16)}] {rng.choice(self.words[:50])}:"
                f" {rng.choice(['GET', 'GET', 'POST', 'PUT'])} {rng.choice(LOG_ROUTES)}"
                f" status={rng.choice(LOG_STATUS)} took={rng.expovariate(0.05):.1f}ms"
                f" req={rng.getrandbits(48):012x} user={rng.choice(self.names[:300])}\n"
            )
            out.append(line)
            used += len(line)
        return "".join(out).encode()[:size]

    def records(self, size: int) -> bytes:
        """Struct-like binary: counters, small ints, floats and padded names."""
        rng = self.rng
        record = struct.Struct("<QIhhd16s")
        base = rng.getrandbits(40)
        count = size // record.size + 1
        data = b"".join(
            record.pack(
                base + i,
                rng.randrange(1 << 12),
                rng.randrange(-100, 100),
                0,
                rng.random() * 1000,
                rng.choice(self.names).encode()[:16],
            )
            for i in range(count)
        )
        return data[:size]

    def random(self, size: int) -> bytes:
        return self.rng.randbytes(size)

    def small_size(self, low: int, high: int) -> int:
        """Mostly a few KiB, a tail of larger ones (log-normal, as in source trees)."""
        return max(low, min(high, int(self.rng.lognormvariate(8.0, 0.8))))


def build_mixed(writer: Writer, gen: Generator, budget: int) -> None:
    rng = gen.rng
    share = budget // 5
    used = 0
    index = 0
    while used < 2 * share:
        suffix = rng.choice([".py", ".py", ".c", ".md"])
        size = min(gen.small_size(200, 64 * 1024), 2 * share - used)
        folder = "/".join(
            rng.choice(gen.names[: 6 * level]) for level in range(1, rng.randint(2, 5))
        )
        writer.file(
            f"src/{folder}/{gen.names[index % len(gen.names)]}{index}{suffix}",
            gen.source(suffix, size),
        )
        used += size
        index += 1
    used = 0
    for path in libraries(rng):
        size = path.stat().st_size
        if used + size <= share:
            writer.copy(path, f"lib/{path.name}")
            used += size
    index = 0
    while used < share:  # too few libraries here: make up the rest with struct-like data
        size = min(rng.randrange(64 * 1024, 4 * MIB), share - used)
        writer.stream(f"lib/generated-{index:03d}.dat", pieces(size, gen.records))
        used += size
        index += 1
    used = 0
    index = 0
    while used < share:
        size = min(rng.randrange(MIB, 16 * MIB), share - used)
        writer.stream(f"logs/app-{index:03d}.log", pieces(size, gen.log))
        used += size
        index += 1
    build_random(writer, gen, budget - 4 * share, "data")


def libraries(rng: random.Random) -> list[Path]:
    """This machine's medium-sized shared libraries, in a seeded order."""
    if not LIBRARY_DIR.is_dir():
        return []
    found = sorted(
        path
        for path in LIBRARY_DIR.glob("*.so*")
        if not path.is_symlink()
        and path.is_file()
        and LIBRARY_MIN <= path.stat().st_size <= LIBRARY_MAX
    )
    rng.shuffle(found)
    return found


def build_small_files(writer: Writer, gen: Generator, count: int) -> None:
    """Three of four files source-like, one random; 100 files a folder, two levels deep."""
    rng = gen.rng
    for index in range(count):
        size = rng.randrange(8 * 1024 + 1)
        folder = f"d{index // 10_000:02d}/d{index // 100 % 100:02d}"
        if index % 4 == 3:
            writer.file(f"{folder}/f{index:06d}.bin", gen.random(size))
        else:
            suffix = rng.choice(list(STYLES))
            writer.file(f"{folder}/f{index:06d}{suffix}", gen.source(suffix, size))


def build_big_file(writer: Writer, gen: Generator, size: int) -> None:
    """Pieces cycle prose, prose, records, random: about half of it compressible text."""
    cycle = [gen.prose, gen.prose, gen.records, gen.random]
    writer.stream(
        "big.bin",
        (
            cycle[number % len(cycle)](min(PIECE, size - offset))
            for number, offset in enumerate(range(0, size, PIECE))
        ),
    )


def build_random(writer: Writer, gen: Generator, budget: int, folder: str = "random") -> None:
    used = 0
    index = 0
    while used < budget:
        size = min(gen.rng.randrange(MIB, 64 * MIB), budget - used)
        writer.stream(f"{folder}/blob-{index:03d}.bin", pieces(size, gen.random))
        used += size
        index += 1


def build(
    kind: str, root: Path, *, size_mib: int, small_files: int, big_file_gib: float, seed: int
) -> Stats:
    """Writes corpus ``kind`` under a new folder ``root``."""
    root.mkdir(parents=True)
    writer = Writer(root)
    gen = Generator(seed)
    if kind == "mixed":
        build_mixed(writer, gen, size_mib * MIB)
    elif kind == "small-files":
        build_small_files(writer, gen, small_files)
    elif kind == "big-file":
        build_big_file(writer, gen, int(big_file_gib * 2**30))
    elif kind == "random":
        build_random(writer, gen, size_mib * MIB)
    else:
        raise ValueError(f"unknown corpus kind {kind!r}")
    return Stats(writer.files, writer.bytes)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write one benchmark corpus.")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("dest", type=Path, help="folder to create")
    parser.add_argument("--size-mib", type=int, default=500, help="mixed and random")
    parser.add_argument("--small-files", type=int, default=100_000)
    parser.add_argument("--big-file-gib", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=20241127)
    args = parser.parse_args()
    stats = build(
        args.kind,
        args.dest,
        size_mib=args.size_mib,
        small_files=args.small_files,
        big_file_gib=args.big_file_gib,
        seed=args.seed,
    )
    print(json.dumps(asdict(stats)))


if __name__ == "__main__":
    main()
