"""``stc verify``, ``stc list`` and ``stc unpack`` on damaged archives: the documented exit
code (errors.py) and one line ``stc: error: …`` on stderr, never a traceback.

``verify`` reports every problem and exits 6 for damaged chunks; ``list`` decodes without
checking chunk checksums (like ``tar -tv``), so it fails as the stream does (5 missing, 7
corrupt); ``unpack`` checks every chunk first (6).
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.models import CompressionType
from tests.safety.corrupt_archives import ArchiveFactory, flip

pytestmark = pytest.mark.timeout(120)

Damage = Callable[[Path], None]


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> ArchiveFactory:
    return ArchiveFactory(tmp_path_factory.mktemp("cli"))


def part(directory: Path, index: int) -> Path:
    return directory / f"b.part{index:04d}"


def last_part(directory: Path) -> Path:
    return sorted(directory.glob("b.part*"))[-1]


def flip_last_byte(directory: Path) -> None:
    """The gzip trailer's size field: the decoder must notice, at the very end."""
    path = last_part(directory)
    path.write_bytes(flip(path.read_bytes(), -1, 0))


def cut_last_part(directory: Path) -> None:
    path = last_part(directory)
    path.write_bytes(path.read_bytes()[:-5])


def manifest(directory: Path) -> Path:
    return directory / "b.manifest.json"


def edit_manifest(change: Callable[[dict[str, object]], None]) -> Damage:
    def damage(directory: Path) -> None:
        document = json.loads(manifest(directory).read_text())
        change(document)
        manifest(directory).write_text(json.dumps(document))

    return damage


def only_an_empty_part(directory: Path) -> None:
    for path in directory.iterdir():
        path.unlink()
    part(directory, 0).write_bytes(b"")


def nothing_at_all(directory: Path) -> None:
    for path in directory.iterdir():
        path.unlink()


def other_archives_chunk(other: Path) -> Damage:
    def damage(directory: Path) -> None:
        part(directory, 1).write_bytes(part(other, 1).read_bytes())

    return damage


def bad_chunk_name(document: dict[str, object]) -> None:
    chunks = document["chunks"]
    assert isinstance(chunks, list)
    chunks[0]["name"] = "../b.part0000"


# damage → (verify exit, verify text, list exit, list text, unpack exit, unpack text); the list
# codes are those of a list without the member index, which decodes the chunks
CASES: dict[str, tuple[Damage | None, int, str, int, str, int, str]] = {
    "flipped": (flip_last_byte, 6, "b.part0003: corrupt", 7, "gzip", 6, "b.part0003 is damaged"),
    "cut": (cut_last_part, 6, "b.part0003: short", 7, "ends", 6, "b.part0003 is damaged"),
    "missing": (
        lambda d: part(d, 1).unlink(),
        6,
        "b.part0001: missing",
        5,
        "chunk 1 is missing",
        5,
        "chunk 1 is missing",
    ),
    "extra": (
        lambda d: part(d, 9).write_bytes(b"stray"),
        6,
        "b.part0009: extra chunk",
        0,
        "",
        0,
        "",
    ),
    "other archive": (None, 6, "b.part0001: corrupt", 7, "", 6, "b.part0001 is damaged"),
    "manifest not JSON": (
        lambda d: manifest(d).write_text("{not json"),
        4,
        "not valid JSON",
        4,
        "not valid JSON",
        4,
        "not valid JSON",
    ),
    "manifest version 2": (
        edit_manifest(lambda doc: doc.update(version="2.0")),
        4,
        "version '2.0'",
        4,
        "version '2.0'",
        4,
        "version '2.0'",
    ),
    "manifest count": (
        edit_manifest(lambda doc: doc.update(total_chunks=3)),
        4,
        "total_chunks=3",
        4,
        "total_chunks=3",
        4,
        "total_chunks=3",
    ),
    "manifest path": (
        edit_manifest(bad_chunk_name),
        4,
        "not a bare file name",
        4,
        "not a bare file name",
        4,
        "not a bare file name",
    ),
    "manifest gone": (lambda d: manifest(d).unlink(), 4, "is missing", 0, "", 0, ""),
    "an empty part": (only_an_empty_part, 4, "is missing", 7, "empty", 7, "empty"),
    "nothing": (nothing_at_all, 4, "is missing", 5, "neither", 5, "neither"),
}


def run(*args: str) -> tuple[int, str, str]:
    """``stc ARGS -q`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, "-q"])
    return code, out.getvalue(), err.getvalue()


def assert_error(err: str, code: int, text: str, *, problems: bool = False) -> None:
    """One ``stc: error:`` line holding ``text`` (verify lists each problem above it)."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("stc: error:"), err
    if problems:
        assert all(line.startswith("stc: ") for line in lines)
        assert text in err
    else:
        assert len(lines) == 1 and text in lines[0], err


@pytest.mark.parametrize("case", list(CASES))
def test_verify_list_and_unpack_give_the_documented_exit_codes(
    archives: ArchiveFactory, case: str
) -> None:
    damage, verify_code, verify_text, list_code, list_text, unpack_code, unpack_text = CASES[case]
    archive = archives.get(CompressionType.GZIP)
    assert len(archive.parts) == 4
    work = archives.scratch()
    prefix = archive.copy_to(work / "in")
    if damage is None:
        other = archives.get(CompressionType.GZIP, seed=2).copy_to(work / "other")
        damage = other_archives_chunk(other.parent)
    damage(work / "in")

    code, _, err = run("verify", str(prefix))
    assert code == verify_code
    assert_error(err, verify_code, verify_text, problems=verify_code == 6)

    index = prefix.with_name(prefix.name + ".index")
    if index.exists() and case in ("flipped", "cut", "missing", "other archive", "extra"):
        assert run("list", str(prefix))[0] == 0  # the member index lists without the chunks
    index.unlink(missing_ok=True)  # the codes below are those of a list that decodes
    code, out, err = run("list", str(prefix))
    assert code == list_code
    if list_code:
        assert_error(err, list_code, list_text)
    else:
        assert "zeros" in out and not err

    code, _, err = run("unpack", str(prefix), "-C", str(work / "out"))
    assert code == unpack_code
    if unpack_code:
        assert_error(err, unpack_code, unpack_text)
        assert not list((work / "out").rglob(".stc-*.tmp"))


@settings(max_examples=20, deadline=None)
@given(data=st.data(), bit=st.integers(0, 7))
def test_any_flipped_bit_fails_verify_and_unpack_naming_the_chunk(
    archives: ArchiveFactory, data: st.DataObject, bit: int
) -> None:
    archive = archives.get(CompressionType.GZIP)
    index = data.draw(st.integers(0, len(archive.parts) - 1), label="chunk")
    position = data.draw(st.integers(0, len(archive.parts[index]) - 1), label="position")
    work = archives.scratch()
    prefix = archive.copy_to(work / "in")
    victim = part(work / "in", index)
    victim.write_bytes(flip(archive.parts[index], position, bit))

    code, _, err = run("verify", str(prefix), "--deep")
    assert code == 6
    assert_error(err, 6, f"{victim.name}: corrupt", problems=True)

    code, _, err = run("list", str(prefix))
    assert code in (0, 7)  # a flip in file data, gzip's CRC-32 finds it only at the end
    if code:
        assert_error(err, 7, "")

    code, _, err = run("unpack", str(prefix), "-C", str(work / "out"))
    assert code == 6
    assert_error(err, 6, f"{victim.name} is damaged")


def test_json_errors_carry_the_exit_code(archives: ArchiveFactory) -> None:
    archive = archives.get(CompressionType.GZIP)
    work = archives.scratch()
    prefix = archive.copy_to(work / "in")
    part(work / "in", 2).unlink()
    prefix.with_name(prefix.name + ".index").unlink()  # so that list decodes the chunks
    code, out, err = run("list", str(prefix), "--json")
    assert code == 5
    document = json.loads(out)
    assert document["ok"] is False
    assert (document["type"], document["exit_code"]) == ("MissingChunkError", 5)
    assert err.startswith("stc: error: chunk 2 is missing")


def test_a_real_process_prints_no_traceback(archives: ArchiveFactory) -> None:
    archive = archives.get(CompressionType.ZSTD)
    work = archives.scratch()
    prefix = archive.copy_to(work / "in")
    manifest(work / "in").write_text("[" * 100_000)
    for command in ("verify", "list", "info"):
        done = subprocess.run(
            [sys.executable, "-m", "streaming_tar_compressor", command, str(prefix)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 4
        assert done.stderr.count("\n") == 1 and "nests too deep" in done.stderr
