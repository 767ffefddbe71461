"""``--json``: every command prints exactly one JSON document on stdout, success or failure.

Scripts run ``json.loads`` on stdout; a second document after the first (a report, then the
error) breaks them. Each case runs ``stc`` as a real process and checks the document and the
documented exit code.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from streaming_tar_compressor import errors
from streaming_tar_compressor.cli.main import main


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gzip archive of several chunks (the files do not compress)."""
    root = tmp_path_factory.mktemp("json")
    src = root / "src"
    src.mkdir()
    noise = random.Random(9)
    for number in range(3):
        (src / f"f{number}.bin").write_bytes(noise.randbytes(15_000 + 5_000 * number))
    prefix = root / "arc" / "b"
    assert main(["pack", str(src), "-o", str(prefix), "--chunk-size", "20K", "-q"]) == 0
    return prefix


@pytest.fixture
def damaged(archive: Path, tmp_path: Path) -> Path:
    """A copy of the archive whose last chunk lost its last ten bytes."""
    copy = tmp_path / "damaged" / "b"
    copy.parent.mkdir()
    for path in archive.parent.iterdir():
        (copy.parent / path.name).write_bytes(path.read_bytes())
    last = sorted(copy.parent.glob("b.part*"))[-1]
    last.write_bytes(last.read_bytes()[:-10])
    return copy


def chunk_count(prefix: Path) -> int:
    return len(list(prefix.parent.glob(prefix.name + ".part*")))


def run_json(*args: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "streaming_tar_compressor", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    document = json.loads(done.stdout)  # fails on a second document ("Extra data")
    assert isinstance(document, dict), done.stdout
    return done.returncode, document


def assert_failed(code: int, document: dict[str, object], error: type[errors.StcError]) -> None:
    assert document["ok"] is False
    assert document["type"] == error.__name__, document
    assert code == document["exit_code"] == error.exit_code, document
    assert isinstance(document["error"], str) and document["error"]


@pytest.mark.parametrize(
    "args",
    [
        ["pack", "src-only"],  # no -o
        ["unpack"],  # no prefix
        ["unpack", "x", "--max-members", "0"],
        ["verify", "x", "--no-such-option"],
        ["list"],
        ["info", "a", "b"],
        ["no-such-command"],
        [],
    ],
    ids=["pack", "unpack", "unpack-value", "verify", "list", "info", "command", "nothing"],
)
def test_a_usage_error_is_one_document(args: list[str]) -> None:
    code, document = run_json(*args)
    assert_failed(code, document, errors.UsageError)
    assert code == 2


def test_success_is_one_document_for_every_command(archive: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"a\n")
    code, packed = run_json("pack", str(src), "-o", str(tmp_path / "p" / "x"))
    assert code == 0 and packed["ok"] is True and packed["total_chunks"] == 1
    code, restored = run_json("unpack", str(archive), "-C", str(tmp_path / "out"))
    assert code == 0 and restored["ok"] is True and restored["verified"] is True
    code, report = run_json("verify", str(archive), "--deep")
    assert code == 0 and report["ok"] is True and report["problems"] == []
    code, listing = run_json("list", str(archive))
    assert code == 0 and listing["ok"] is True and len(listing["members"]) == 4  # type: ignore[arg-type]
    code, info = run_json("info", str(archive))
    assert code == 0 and info["ok"] is True and info["total_chunks"] == chunk_count(archive) > 1


def test_verify_of_a_damaged_archive_puts_the_error_in_its_report(damaged: Path) -> None:
    code, document = run_json("verify", str(damaged))
    assert_failed(code, document, errors.ArchiveDamagedError)
    last = sorted(damaged.parent.glob("b.part*"))[-1].name
    problems = document["problems"]
    assert isinstance(problems, list) and len(problems) == 1, problems
    assert problems[0].startswith(f"{last}: short"), problems
    assert document["chunks_checked"] == chunk_count(damaged)


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("unpack", errors.ChecksumMismatchError),
        ("list", errors.TruncatedStreamError),
        ("pack", errors.OutputError),  # the prefix already holds an archive
    ],
)
def test_other_commands_on_a_damaged_archive(
    damaged: Path, tmp_path: Path, command: str, error: type[errors.StcError]
) -> None:
    args = {
        "unpack": ["unpack", str(damaged), "-C", str(tmp_path / "out")],
        "list": ["list", str(damaged)],
        "pack": ["pack", str(tmp_path), "-o", str(damaged)],
    }[command]
    Path(f"{damaged}.index").unlink()  # list then decodes the chunks, as it does without one
    code, document = run_json(*args)
    assert_failed(code, document, error)


def test_info_of_a_damaged_manifest(damaged: Path) -> None:
    Path(f"{damaged}.manifest.json").write_text('{"version": "1.0", "chunks": [')
    code, document = run_json("info", str(damaged))
    assert_failed(code, document, errors.ManifestError)


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("unpack", errors.MissingChunkError),
        ("verify", errors.ManifestError),
        ("list", errors.MissingChunkError),
        ("info", errors.ManifestError),
        ("pack", errors.SourceError),
    ],
)
def test_a_missing_prefix_or_source(
    tmp_path: Path, command: str, error: type[errors.StcError]
) -> None:
    missing = str(tmp_path / "nowhere" / "b")
    args = ["pack", missing, "-o", str(tmp_path / "o")] if command == "pack" else [command, missing]
    code, document = run_json(*args)
    assert_failed(code, document, error)
