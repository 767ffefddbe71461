"""Time stc pack/unpack for every codec against the GNU pipelines doing the same job.

One run, interleaved repetitions (for each repetition, every command in a fixed order), so that
a machine that slows down mid-run slows every command alike. Reports the median and minimum per
command, ratios ours / theirs, peak RSS, the issue's goals, and writes JSON for comparing
commits. Timings belong here, never in unit tests.

    make bench BENCH_ARGS=--quick      # smoke test: small corpora, one repetition
    .venv/bin/python benchmarks/bench.py --corpora mixed --codecs gzip,zstd --reps 5
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
KINDS = ("mixed", "small-files", "big-file", "random")
CODECS = ("gzip", "zstd", "xz", "lz4", "bzip2", "none")
MIB = 2**20
GIB = 2**30
DEFAULTS = {"size_mib": 500, "small_files": 100_000, "big_file_gib": 4.0, "reps": 3}
QUICK = {"size_mib": 64, "small_files": 5_000, "big_file_gib": 0.25, "reps": 1}
SPLIT = "split -b 50M -d -a 4 - out/a.part"
TOOLS = ("tar", "split", "gzip", "pigz", "zstd", "xz", "lz4", "lbzip2")
RSS_LIMIT_MIB = 128
SPEED_CORPORA = ("mixed", "small-files", "big-file")  # the speed goals; random has its own


@dataclass(frozen=True)
class Pipeline:
    """One way to pack and unpack a corpus; ``tools`` must all be installed to run it."""

    name: str
    codec: str  # the --codecs entry that selects it
    ours: bool
    pack: str
    unpack: str
    tools: tuple[str, ...]


@dataclass
class Run:
    corpus: str
    pipeline: str
    op: str
    rep: int
    seconds: float
    cpu_seconds: float
    max_rss_kib: int
    output_bytes: int | None
    ok: bool


@dataclass
class Summary:
    """Medians and minimums of one command's successful runs."""

    seconds: float
    min_seconds: float
    max_rss_kib: int
    output_bytes: int | None
    runs: int


@dataclass
class CorpusInfo:
    files: int
    bytes: int
    tar_bytes: int
    build_seconds: float
    summaries: dict[str, dict[str, Summary]] = field(default_factory=dict)  # op -> pipeline
    failed: dict[str, str] = field(default_factory=dict)  # pipeline -> where it failed first


@dataclass(frozen=True)
class Goal:
    text: str
    op: str
    ours: str
    theirs: str
    min_speed: float
    size_vs: str | None = None
    max_size: float = 0.0
    corpora: tuple[str, ...] = SPEED_CORPORA


def pipelines(stc: str, cores: int) -> list[Pipeline]:
    """The fixed order of every repetition: each GNU pipeline next to its stc counterpart."""
    tar = "tar -cf - corpus"
    cat = "cat out/a.part*"
    untar = "tar -xf - -C dest"
    unpack_ours = f"{stc} unpack out/a -C dest -q"

    def gnu(name: str, codec: str, tool: str, pack: str, unpack: str) -> Pipeline:
        return Pipeline(
            name,
            codec,
            False,
            f"{tar} | {pack} | {SPLIT}",
            f"{cat} | {unpack} | {untar}",
            ("tar", "split", tool),
        )

    def ours(codec: str, extra: str = "") -> Pipeline:
        return Pipeline(
            f"stc {codec}{extra}",
            codec,
            True,
            f"{stc} pack corpus -o out/a -c {codec}{extra} --chunk-size 50M -q",
            unpack_ours,
            (),
        )

    def sealed(codec: str) -> Pipeline:
        """Encrypted with age to the key main() makes in the work folder."""
        return Pipeline(
            f"stc {codec} age",
            codec,
            True,
            f"{stc} pack corpus -o out/a -c {codec} --chunk-size 50M -q -R recipients.txt",
            f"{unpack_ours} -i key.txt",
            (),
        )

    return [
        gnu("gzip -6", "gzip", "gzip", "gzip -6", "gzip -d"),
        gnu(f"pigz -p{cores} -6", "gzip", "pigz", f"pigz -p{cores} -6", "pigz -d"),
        ours("gzip"),
        ours("gzip", " -l 1"),
        sealed("gzip"),
        gnu(f"zstd -3 -T{cores}", "zstd", "zstd", f"zstd -3 -T{cores} -q", "zstd -d -q"),
        ours("zstd"),
        sealed("zstd"),
        gnu(f"xz -6 -T{cores}", "xz", "xz", f"xz -6 -T{cores}", f"xz -d -T{cores}"),
        ours("xz"),
        gnu("lz4 -1", "lz4", "lz4", "lz4 -1 -q -c", "lz4 -d -q -c"),
        ours("lz4"),
        gnu(f"lbzip2 -n{cores}", "bzip2", "lbzip2", f"lbzip2 -n{cores}", f"lbzip2 -d -n{cores}"),
        ours("bzip2"),
        Pipeline("tar | split", "none", False, f"{tar} | {SPLIT}", f"{cat} | {untar}", ("tar",)),
        ours("none"),
    ]


def pairs(cores: int) -> list[tuple[str, str]]:
    """(ours, theirs) rows of the comparison table."""
    return [
        ("stc gzip", f"pigz -p{cores} -6"),
        ("stc gzip", "gzip -6"),
        ("stc gzip -l 1", f"pigz -p{cores} -6"),
        ("stc zstd", f"zstd -3 -T{cores}"),
        ("stc xz", f"xz -6 -T{cores}"),
        ("stc lz4", "lz4 -1"),
        ("stc bzip2", f"lbzip2 -n{cores}"),
        ("stc none", "tar | split"),
        ("stc gzip", "tar | split"),
        ("stc gzip age", "stc gzip"),
        ("stc zstd age", "stc zstd"),
    ]


def goals(cores: int) -> list[Goal]:
    """The targets of the many-files issue (its -p2/-T2 are this machine's core count here),
    plus the codecs it does not name, held where earlier work put them."""
    pigz, zstd, xz = f"pigz -p{cores} -6", f"zstd -3 -T{cores}", f"xz -6 -T{cores}"
    return [
        Goal(
            f"gzip pack ≥ 1.8x {pigz}, size ≤ 1.01x gzip -6",
            "pack",
            "stc gzip",
            pigz,
            1.8,
            size_vs="gzip -6",
            max_size=1.01,
            corpora=("mixed",),
        ),
        Goal(
            f"gzip pack ≥ 1.5x {pigz}, size ≤ 1.01x gzip -6",
            "pack",
            "stc gzip",
            pigz,
            1.5,
            size_vs="gzip -6",
            max_size=1.01,
            corpora=("small-files",),
        ),
        Goal(
            f"zstd pack ≥ 1.0x {zstd}, size ≤ 1.02x",
            "pack",
            "stc zstd",
            zstd,
            1.0,
            size_vs=zstd,
            max_size=1.02,
        ),
        Goal("lz4 pack ≥ 1.0x lz4 -1", "pack", "stc lz4", "lz4 -1", 1.0),
        Goal("none pack ≥ 0.8x tar | split", "pack", "stc none", "tar | split", 0.8),
        Goal(f"xz pack ≥ 1.0x {xz}", "pack", "stc xz", xz, 1.0),
        Goal(f"bzip2 pack ≥ 0.9x lbzip2 -n{cores}", "pack", "stc bzip2", f"lbzip2 -n{cores}", 0.9),
        Goal("gzip unpack ≥ 1.2x pigz -d | tar -x", "unpack", "stc gzip", pigz, 1.2),
        Goal("zstd unpack ≥ 1.0x zstd -d | tar -x", "unpack", "stc zstd", zstd, 1.0),
        Goal("lz4 unpack ≥ 1.0x lz4 -d | tar -x", "unpack", "stc lz4", "lz4 -1", 1.0),
        Goal("none unpack ≥ 0.8x cat | tar -x", "unpack", "stc none", "tar | split", 0.8),
        Goal("xz unpack ≥ 1.0x xz -d | tar -x", "unpack", "stc xz", xz, 1.0),
        *(
            Goal(
                f"age-encrypted {codec} {op} ≥ 0.9x unencrypted",
                op,
                f"stc {codec} age",
                f"stc {codec}",
                0.9,
                corpora=("mixed",),
            )
            for codec in ("gzip", "zstd")
            for op in ("pack", "unpack")
        ),
        Goal(
            "random: gzip pack ≥ 0.8x tar | split",
            "pack",
            "stc gzip",
            "tar | split",
            0.8,
            corpora=("random",),
        ),
    ]


def timed(
    command: str, cwd: Path, stderr: IO[bytes] | None = None
) -> tuple[float, float, int, int]:
    """Wall and CPU seconds, peak RSS (KiB, largest process of the tree) and exit code."""
    started = time.perf_counter()
    process = subprocess.Popen(["bash", "-o", "pipefail", "-c", command], cwd=cwd, stderr=stderr)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, cpu, usage.ru_maxrss, process.returncode


def tree_totals(root: Path) -> tuple[int, int]:
    """(regular files, bytes) under root, walked without holding the listing."""
    files = size = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    files += 1
                    size += entry.stat(follow_symlinks=False).st_size
    return files, size


def fresh(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()


def needed_bytes(kind: str, size_mib: int, small_files: int, big_file_gib: float) -> int:
    """Corpus, one archive and one restored copy at a time (tmpfs rounds files to pages)."""
    if kind == "small-files":
        return small_files * 18 * 1024
    if kind == "big-file":
        return int(big_file_gib * GIB * 3.1)
    return int(size_mib * MIB * 3.2)


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def choose_base(need: int) -> Path:
    """tmpfs keeps the disk out of the timings, when it can hold the data without swapping."""
    shm = Path("/dev/shm")
    if shm.is_dir():
        free = shutil.disk_usage(shm).free
        room = min(free, mem_available() - 2 * GIB)
        if room >= need:
            print(f"data on tmpfs /dev/shm ({free / GIB:.1f} GiB free, needs ~{need / GIB:.1f})")
            return shm
        print(f"/dev/shm has ~{max(room, 0) / GIB:.1f} GiB of room, needs ~{need / GIB:.1f}:")
    base = Path(tempfile.gettempdir())
    print(f"data in {base} (not tmpfs: timings include the file system and disk)")
    return base


def first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({error})"
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return lines[0] if lines else ""


def machine_info(stc: str, cores: int) -> dict[str, object]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = first_line(["git", "-C", str(HERE.parent), "rev-parse", "HEAD"])
    dirty = bool(first_line(["git", "-C", str(HERE.parent), "status", "--porcelain", "--", "src"]))
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": cores,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit,
        "src_dirty": dirty,
        "stc": first_line([stc, "--version"]),
        "tools": {tool: first_line([tool, "--version"]) for tool in TOOLS if shutil.which(tool)},
    }


def summarize(runs: list[Run]) -> Summary | None:
    good = [run for run in runs if run.ok]
    if not good:
        return None
    sizes = [run.output_bytes for run in good if run.output_bytes is not None]
    return Summary(
        seconds=statistics.median(run.seconds for run in good),
        min_seconds=min(run.seconds for run in good),
        max_rss_kib=max(run.max_rss_kib for run in good),
        output_bytes=int(statistics.median(sizes)) if sizes else None,
        runs=len(good),
    )


def bench_corpus(
    kind: str, work: Path, selected: list[Pipeline], reps: int, args: argparse.Namespace
) -> tuple[CorpusInfo, list[Run]]:
    """Builds one corpus, runs every selected pipeline ``reps`` times interleaved, removes it."""
    corpus = work / "corpus"
    started = time.perf_counter()
    sizes = {"--size-mib": args.size_mib, "--small-files": args.small_files}
    sizes |= {"--big-file-gib": args.big_file_gib, "--seed": args.seed}
    built = subprocess.run(
        [sys.executable, str(HERE / "corpus.py"), kind, str(corpus)]
        + [str(part) for pair in sizes.items() for part in pair],
        check=True,
        capture_output=True,
        text=True,
    )
    stats = json.loads(built.stdout)
    tar_bytes = int(
        subprocess.run(
            "tar -cf - corpus | wc -c", shell=True, cwd=work, check=True, capture_output=True
        ).stdout
    )
    info = CorpusInfo(stats["files"], stats["bytes"], tar_bytes, time.perf_counter() - started)
    print(
        f"corpus {kind}: {info.files:,} files, {info.bytes / MIB:,.1f} MiB,"
        f" tar stream {tar_bytes / MIB:,.1f} MiB, built in {info.build_seconds:.0f} s"
    )
    runs: list[Run] = []
    for rep in range(reps):
        started = time.perf_counter()
        for pipeline in selected:
            if pipeline.name in info.failed:
                continue
            fresh(work / "out")
            for op, command in (("pack", pipeline.pack), ("unpack", pipeline.unpack)):
                fresh(work / "dest")
                with open(work / "stderr.log", "wb") as errors:
                    seconds, cpu, rss, code = timed(command, work, errors)
                ok = code == 0
                size = None
                if ok and op == "pack":
                    size = sum(path.stat().st_size for path in (work / "out").glob("a.part*"))
                if ok and op == "unpack" and rep == 0:
                    restored = tree_totals(work / "dest" / "corpus")
                    if restored != (info.files, info.bytes):
                        print(f"  {pipeline.name} unpack restored {restored}, not the corpus")
                        ok = False
                elif not ok:
                    lines = (work / "stderr.log").read_text(errors="replace").strip().splitlines()
                    tail = " / ".join(lines[-2:])
                    print(f"  FAILED (exit {code}): {command}\n    {tail}")
                runs.append(Run(kind, pipeline.name, op, rep, seconds, cpu, rss, size, ok))
                if not ok:
                    info.failed[pipeline.name] = f"{op} in repetition {rep + 1}"
                    break
        print(f"  repetition {rep + 1}/{reps}: {time.perf_counter() - started:.0f} s")
    shutil.rmtree(work / "dest", ignore_errors=True)
    shutil.rmtree(work / "out", ignore_errors=True)
    shutil.rmtree(corpus)
    for op in ("pack", "unpack"):
        for pipeline in selected:
            summary = summarize(
                [run for run in runs if run.pipeline == pipeline.name and run.op == op]
            )
            if summary:
                info.summaries.setdefault(op, {})[pipeline.name] = summary
    return info, runs


def ratio(corpus: CorpusInfo, op: str, ours: str, theirs: str) -> float | None:
    """Throughput ours / theirs from the medians, None when either did not run."""
    mine = corpus.summaries.get(op, {}).get(ours)
    other = corpus.summaries.get(op, {}).get(theirs)
    return other.seconds / mine.seconds if mine and other else None


def size_ratio(corpus: CorpusInfo, ours: str, theirs: str) -> float | None:
    mine = corpus.summaries.get("pack", {}).get(ours)
    other = corpus.summaries.get("pack", {}).get(theirs)
    if mine and other and mine.output_bytes and other.output_bytes:
        return mine.output_bytes / other.output_bytes
    return None


def cell(command: str) -> str:
    """A command as Markdown code whose pipes do not split the table row."""
    return "`" + command.replace("|", r"\|") + "`"


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "—" if value is None else f"{value:{spec}}"


def print_commands(corpora: dict[str, CorpusInfo], selected: list[Pipeline]) -> None:
    print("\n## Commands: median s (min), MB/s of the tar stream at the median, peak RSS MiB")
    print("| corpus | command | pack s | pack MB/s | unpack s | unpack MB/s | out MiB | RSS p/u |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for kind, corpus in corpora.items():
        for pipeline in selected:
            packed = corpus.summaries.get("pack", {}).get(pipeline.name)
            if packed is None:
                if pipeline.name in corpus.failed:
                    print(f"| {kind} | {cell(pipeline.name)} | failed |" + " — |" * 6)
                continue
            unpacked = corpus.summaries.get("unpack", {}).get(pipeline.name)
            cells = [f"{packed.seconds:.2f} ({packed.min_seconds:.2f})"]
            cells.append(f"{corpus.tar_bytes / packed.seconds / 1e6:.0f}")
            if unpacked:
                cells.append(f"{unpacked.seconds:.2f} ({unpacked.min_seconds:.2f})")
                cells.append(f"{corpus.tar_bytes / unpacked.seconds / 1e6:.0f}")
            else:
                cells += ["failed", "—"]
            cells.append(f"{(packed.output_bytes or 0) / MIB:.1f}")
            rss_unpack = f"{unpacked.max_rss_kib / 1024:.0f}" if unpacked else "—"
            cells.append(f"{packed.max_rss_kib / 1024:.0f}/{rss_unpack}")
            print(f"| {kind} | {cell(pipeline.name)} | " + " | ".join(cells) + " |")


def print_pairs(corpora: dict[str, CorpusInfo], cores: int) -> list[dict[str, object]]:
    print("\n## Ours / theirs: throughput ratios (> 1: stc faster), size ratio (< 1: smaller)")
    print("| corpus | ours | theirs | pack x | unpack x | size x | RSS MiB ours p/u | theirs p/u |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    rows: list[dict[str, object]] = []
    for kind, corpus in corpora.items():
        for ours, theirs in pairs(cores):
            if theirs == "tar | split" and ours != "stc none" and kind != "random":
                continue  # that row only answers the random-data goal
            packs = corpus.summaries.get("pack", {})
            if ours not in packs or theirs not in packs:
                continue
            pack = ratio(corpus, "pack", ours, theirs)
            unpack = ratio(corpus, "unpack", ours, theirs)
            size = size_ratio(corpus, ours, theirs)
            rows.append(
                {
                    "corpus": kind,
                    "ours": ours,
                    "theirs": theirs,
                    "pack": pack,
                    "unpack": unpack,
                    "size": size,
                }
            )
            rss = [
                "/".join(
                    fmt(s.max_rss_kib / 1024 if s else None, ".0f")
                    for s in (packs[name], corpus.summaries.get("unpack", {}).get(name))
                )
                for name in (ours, theirs)
            ]
            print(
                f"| {kind} | {cell(ours)} | {cell(theirs)} | {fmt(pack)} | {fmt(unpack)}"
                f" | {fmt(size, '.3f')} | {rss[0]} | {rss[1]} |"
            )
    return rows


def judge(goal: Goal, corpus: CorpusInfo) -> tuple[str, float | None, float | None]:
    speed = ratio(corpus, goal.op, goal.ours, goal.theirs)
    if speed is None:
        return "SKIP", None, None
    size = size_ratio(corpus, goal.ours, goal.size_vs) if goal.size_vs else None
    if goal.size_vs and size is None:
        return "SKIP", speed, None
    passed = speed >= goal.min_speed and (size is None or size <= goal.max_size)
    return ("PASS" if passed else "FAIL"), speed, size


def print_goals(corpora: dict[str, CorpusInfo], runs: list[Run], cores: int) -> list[object]:
    kinds = list(corpora)
    print("\n## Goals (throughput ratio x, size ratio after /)")
    print("| goal | " + " | ".join(kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    results: list[object] = []
    for goal in goals(cores):
        if not set(goal.corpora) & set(kinds):
            continue
        cells = []
        for kind in kinds:
            if kind not in goal.corpora:
                cells.append("")
                continue
            status, speed, size = judge(goal, corpora[kind])
            results.append(
                {"goal": goal.text, "corpus": kind, "status": status, "speed": speed, "size": size}
            )
            detail = "" if speed is None else f" {speed:.2f}x"
            detail += "" if size is None else f" / {size:.3f}"
            cells.append(status + detail)
        print("| " + goal.text.replace("|", r"\|") + " | " + " | ".join(cells) + " |")
    cells = []
    for kind in kinds:
        ours = [run for run in runs if run.corpus == kind and run.pipeline.startswith("stc ")]
        if not ours:
            cells.append("SKIP")
            continue
        worst = max(ours, key=lambda run: run.max_rss_kib)
        peak = worst.max_rss_kib / 1024
        status = "PASS" if peak <= RSS_LIMIT_MIB else "FAIL"
        where = f"{worst.pipeline} {worst.op}"
        results.append(
            {"goal": "stc peak RSS", "corpus": kind, "status": status, "mib": peak, "run": where}
        )
        cells.append(f"{status} {peak:.0f} MiB ({where})")
    print(f"| every stc run's peak RSS ≤ {RSS_LIMIT_MIB} MiB | " + " | ".join(cells) + " |")
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpora", default=",".join(KINDS), help="comma-separated: " + ", ".join(KINDS)
    )
    parser.add_argument(
        "--codecs", default=",".join(CODECS), help="comma-separated: " + ", ".join(CODECS)
    )
    parser.add_argument("--size-mib", type=int, help="mixed and random corpora (default 500)")
    parser.add_argument("--small-files", type=int, help="files in small-files (default 100000)")
    parser.add_argument("--big-file-gib", type=float, help="size of big-file (default 4)")
    parser.add_argument("--reps", type=int, help="interleaved repetitions (default 3)")
    parser.add_argument("--quick", action="store_true", help="small corpora, one repetition")
    parser.add_argument("--seed", type=int, default=20241127)
    parser.add_argument("--json", type=Path, default=Path("/tmp/stc-bench.json"))
    args = parser.parse_args()
    for name, default in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    for option, allowed in (("corpora", KINDS), ("codecs", CODECS)):
        unknown = set(getattr(args, option).split(",")) - set(allowed)
        if unknown:
            parser.error(f"--{option}: unknown {', '.join(sorted(unknown))}")
    return args


def main() -> None:
    args = parse_args()
    if isinstance(sys.stdout, io.TextIOWrapper):  # our lines before the children's stderr
        sys.stdout.reconfigure(line_buffering=True)
    kinds = [kind for kind in KINDS if kind in args.corpora.split(",")]
    cores = len(os.sched_getaffinity(0))
    stc_path = Path(sys.executable).with_name("stc")
    if not stc_path.exists():
        raise SystemExit(f"{stc_path} not found: run make venv first")
    stc = shlex.quote(str(stc_path))
    codecs = args.codecs.split(",")
    missing = {tool for tool in TOOLS if not shutil.which(tool)}
    for tool in sorted(missing):
        print(f"{tool} not found: skipping its rows (make bench installs it on Debian)")
    selected = [
        pipeline
        for pipeline in pipelines(stc, cores)
        if pipeline.codec in codecs and not missing.intersection(pipeline.tools)
    ]
    need = max(
        needed_bytes(kind, args.size_mib, args.small_files, args.big_file_gib) for kind in kinds
    )
    machine = machine_info(stc, cores)
    print(
        f"{machine['cpu']}, {cores} usable cores; commit {str(machine['commit'])[:10]}"
        f"{' (src modified)' if machine['src_dirty'] else ''}; {args.reps} repetition(s)"
    )
    work = Path(tempfile.mkdtemp(prefix="stc-bench-", dir=choose_base(need)))
    print(f"work dir {work}")
    made = subprocess.run(
        [str(stc_path), "keygen", "-o", str(work / "key.txt"), "-q"],
        check=True,
        capture_output=True,
        text=True,
    )
    (work / "recipients.txt").write_text(made.stdout)  # the age1… the encrypted rows use
    started = time.perf_counter()
    corpora: dict[str, CorpusInfo] = {}
    runs: list[Run] = []
    floors: list[int] = []
    try:
        for kind in kinds:
            floors.append(timed("true", work)[2])
            corpora[kind], corpus_runs = bench_corpus(kind, work, selected, args.reps, args)
            runs += corpus_runs
        floors.append(timed("true", work)[2])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nPeak RSS is the largest process of each command's tree (wait4); `bash -c true`"
        f" launched from here reads {max(floors) / 1024:.0f} MiB, a floor under every figure."
    )
    print_commands(corpora, selected)
    pair_rows = print_pairs(corpora, cores)
    goal_rows = print_goals(corpora, runs, cores)
    report = {
        "machine": machine,
        "settings": {
            **{name: getattr(args, name) for name in DEFAULTS},
            "corpora": kinds,
            "codecs": codecs,
            "seed": args.seed,
            "quick": args.quick,
            "work_dir": str(work),
            "missing_tools": sorted(missing),
            "rss_floor_kib": max(floors),
        },
        "corpora": {kind: asdict(info) for kind, info in corpora.items()},
        "commands": {p.name: {"pack": p.pack, "unpack": p.unpack} for p in selected},
        "runs": [asdict(run) for run in runs],
        "pairs": pair_rows,
        "goals": goal_rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nJSON: {args.json}; the bench took {(time.perf_counter() - started) / 60:.0f} min")


if __name__ == "__main__":
    main()
