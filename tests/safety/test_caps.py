"""Caps on what one archive may make, and decompression bombs.

``max_output_bytes`` and ``max_members`` stop extraction with LimitExceededError at the member
that would pass them, before any of its bytes are written, through every entry point. A gzip
bomb (1 GiB of zeros in about 1 MiB) unpacks in bounded memory, and a cap stops it early.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streaming_tar_compressor import sync
from streaming_tar_compressor.cli.main import main, parse_size
from streaming_tar_compressor.errors import LimitExceededError, UsageError
from tests.safety.test_hostile import (
    BLOCK,
    ENTRY_POINTS,
    Outcome,
    World,
    api,
    directory,
    entry,
    header,
    tar,
    write_parts,
)

FILES = [(f"f{i:02d}", bytes([65 + i]) * 10_000) for i in range(8)]
EIGHT_FILES = tar(*(entry(name, data) for name, data in FILES))
BOMB_FILES, BOMB_FILE_SIZE = 64, 16 * 2**20  # 1 GiB of zeros
PEAK_RSS_LIMIT = 200 * 2**20  # bytes
# Runs the CLI and reports its own peak RSS on the last line of stderr: VmHWM, which starts
# afresh at exec (getrusage's ru_maxrss would carry over the forking pytest process's peak).
MEASURED_CLI = (
    "import re, sys\n"
    "from streaming_tar_compressor.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "status = open('/proc/self/status').read()\n"
    "print('peak-rss-kib', re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def complete_prefix(out: Path, count: int) -> list[str]:
    """What a stopped unpack leaves: some of the first files, each whole, and nothing else.

    With a manifest, only files whose chunk verified stay; without, every finished one."""
    left = sorted(os.listdir(out))
    assert left == [name for name, _ in FILES[: len(left)]]
    assert len(left) <= count
    for name, data in FILES[: len(left)]:
        assert (out / name).read_bytes() == data
    return left


@pytest.mark.timeout(60)
@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_max_output_bytes_stops_before_the_file_that_would_pass_it(tmp_path, entry_point):
    world = World(tmp_path)
    unpack = ENTRY_POINTS[entry_point]
    outcome = unpack(world.arc / "a", world.out, EIGHT_FILES, max_output_bytes=35_000)
    assert outcome == Outcome(
        LimitExceededError, "stopped at member 'f03': the archive exceeds max_output_bytes=35000"
    )
    left = complete_prefix(world.out, 3)
    if entry_point in ("cli-stdin", "seed", "stream", "sync-chunks"):  # nothing to verify
        assert left == ["f00", "f01", "f02"]
    world.assert_nothing_special()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_max_members_stops_before_the_member_past_it(tmp_path, entry_point):
    world = World(tmp_path)
    archive = tar(directory("d"), *(entry(name, data) for name, data in FILES))
    outcome = ENTRY_POINTS[entry_point](world.arc / "a", world.out, archive, max_members=5)
    assert outcome == Outcome(
        LimitExceededError, "stopped at member 'f04': the archive exceeds max_members=5"
    )
    assert not (world.out / "f04").exists()
    world.assert_nothing_special()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_caps_that_the_archive_just_fits_pass(tmp_path, entry_point):
    world = World(tmp_path)
    unpack = ENTRY_POINTS[entry_point]
    caps = {"max_output_bytes": 80_000, "max_members": 8}
    assert unpack(world.arc / "a", world.out, EIGHT_FILES, **caps) == Outcome(None, "")
    assert complete_prefix(world.out, 8) == [name for name, _ in FILES]


def test_cli_size_suffixes_and_bad_values(tmp_path, capsys):
    world = World(tmp_path)
    write_parts(world.arc / "a", [gzip.compress(EIGHT_FILES)], None)
    argv = ["unpack", str(world.arc / "a"), "-C", str(world.out), "-q"]
    assert main([*argv, "--max-output-bytes", "30K"]) == LimitExceededError.exit_code == 12
    assert "'f03': the archive exceeds max_output_bytes=30720" in capsys.readouterr().err
    for flag, value in [
        ("--max-output-bytes", "0"),
        ("--max-output-bytes", "lots"),
        ("--max-members", "0"),
        ("--max-members", "-3"),
        ("--max-members", "2.5"),
    ]:
        assert main([*argv, flag, value]) == 2
        assert flag in capsys.readouterr().err


def test_unpack_help_documents_the_caps(capsys):
    with pytest.raises(SystemExit):
        main(["unpack", "--help"])
    help_text = capsys.readouterr().out
    assert "--max-output-bytes SIZE" in help_text
    assert "--max-members N" in help_text


def test_cli_reports_the_cap_in_one_line(tmp_path):
    world = World(tmp_path)
    write_parts(world.arc / "a", [gzip.compress(EIGHT_FILES)], None)
    command = [sys.executable, "-m", "streaming_tar_compressor", "unpack", str(world.arc / "a")]
    done = subprocess.run(
        [*command, "-C", str(world.out), "--max-output-bytes", "30K"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 12
    assert done.stderr.splitlines() == [
        "stc: error: stopped at member 'f03': the archive exceeds max_output_bytes=30720"
    ]


@pytest.mark.parametrize("caps", [{"max_output_bytes": -1}, {"max_members": -1}])
def test_negative_caps_are_a_usage_error(tmp_path, caps):
    outcome = api(lambda: sync.unpack_stream([gzip.compress(EIGHT_FILES)], tmp_path, **caps))
    assert outcome.error is UsageError
    assert os.listdir(tmp_path) == []


@pytest.mark.timeout(60)
def test_a_cap_stops_a_bomb_of_many_tiny_members(tmp_path):
    """20 000 empty files in a few kilobytes: the cap stops it at the 1001st."""
    world = World(tmp_path)
    members = b"".join(header(b"m%05d" % i) for i in range(20_000))
    archive = members + bytes(2 * BLOCK)
    unpack = ENTRY_POINTS["seed"]
    outcome = unpack(world.arc / "many", world.out, archive, max_members=1000)
    assert outcome.error is LimitExceededError
    assert "'m01000'" in outcome.message
    assert len(os.listdir(world.out)) == 1000


# -- the gzip bomb ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gzip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 files of 16 MiB of zeros: a gzip member per header, the same ~16 KiB member of zeros
    after each, so building it takes one compression of 16 MiB."""
    prefix = tmp_path_factory.mktemp("bomb") / "bomb"
    zeros = gzip.compress(bytes(BOMB_FILE_SIZE), compresslevel=9, mtime=0)
    with open(f"{prefix}.part0000", "wb") as part:
        for index in range(BOMB_FILES):
            name = b"zeros-%02d" % index
            part.write(gzip.compress(header(name, size=BOMB_FILE_SIZE), mtime=0))
            part.write(zeros)
        part.write(gzip.compress(bytes(2 * BLOCK), mtime=0))
    assert os.path.getsize(f"{prefix}.part0000") < 2 * 2**20
    return prefix


def unpack_measured(prefix: Path, out: Path, *flags: str) -> tuple[int, list[str], int]:
    """Exit code, stderr lines and peak RSS in bytes of ``stc unpack`` in its own process."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURED_CLI, "unpack", str(prefix), "-C", str(out), "-q", *flags],
        capture_output=True,
        text=True,
        timeout=240,
    )
    *lines, last = done.stderr.splitlines()
    label, kib = last.split()
    assert label == "peak-rss-kib", done.stderr
    return done.returncode, lines, int(kib) * 1024


@pytest.mark.timeout(300)
def test_a_gzip_bomb_unpacks_in_bounded_memory(gzip_bomb, tmp_path):
    out = tmp_path / "out"
    try:
        code, lines, peak = unpack_measured(gzip_bomb, out)
        assert (code, lines) == (0, [])
        sizes = {path.name: path.stat().st_size for path in out.iterdir()}
        assert sizes == {f"zeros-{i:02d}": BOMB_FILE_SIZE for i in range(BOMB_FILES)}
        assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB"
    finally:
        subprocess.run(["rm", "-rf", str(out)], check=True)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("flag", "value", "whole_files"), [("--max-output-bytes", "100M", 6), ("--max-members", "3", 3)]
)
def test_caps_stop_a_gzip_bomb_early(gzip_bomb, tmp_path, flag, value, whole_files):
    """Only whole files are left: the one that would pass the cap is never started."""
    out = tmp_path / "out"
    code, lines, peak = unpack_measured(gzip_bomb, out, flag, value)
    assert code == LimitExceededError.exit_code
    assert lines == [
        f"stc: error: stopped at member 'zeros-{whole_files:02d}': the archive exceeds "
        f"{flag[2:].replace('-', '_')}={parse_size(value)}"
    ]
    sizes = {path.name: path.stat().st_size for path in out.iterdir()}
    assert sizes == {f"zeros-{i:02d}": BOMB_FILE_SIZE for i in range(whole_files)}
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB"
