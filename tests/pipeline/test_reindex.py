"""``stc index``: an archive's member index rebuilt by decoding it once, every chunk verified;
the same bytes a pack writes, pinned by a manifest rewritten only when everything checked.
And ``stc verify`` reports a missing or damaged index."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.errors import ArchiveBusyError, ChecksumMismatchError
from streaming_tar_compressor.storage.local import PrefixLock
from tests.pipeline.test_extract import rewrite_index
from tests.safety.test_resume_pack import SMALL, make_source


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def without_index(prefix: Path) -> None:
    """What a pack before 2026-12-05 left: no index file, no ``index`` key."""
    (prefix.parent / "a.index").unlink()
    manifest = prefix.parent / "a.manifest.json"
    document = json.loads(manifest.read_text())
    del document["index"]
    manifest.write_text(json.dumps(document, indent=1) + "\n")
    lines = (prefix.parent / "a.sha256").read_text().splitlines()
    (prefix.parent / "a.sha256").write_text("".join(f"{line}\n" for line in lines[:-1]))


@pytest.mark.parametrize("codec", ["gzip", "zstd", "xz", "none"])
@pytest.mark.parametrize("digests", [False, True])
def test_a_rebuilt_index_is_the_one_the_pack_wrote(
    tmp_path: Path, codec: str, digests: bool
) -> None:
    prefix = tmp_path / "out" / "a"
    stc.pack([str(make_source(tmp_path))], str(prefix), compression=codec,
             content_digests=digests, **SMALL)  # fmt: skip
    packed = files_of(prefix.parent)
    without_index(prefix)
    manifest = stc.rebuild_index(prefix, content_digests=digests)
    assert manifest.index is not None and manifest.index.content_sha256 is digests
    assert files_of(prefix.parent) == packed
    assert stc.verify(prefix).ok


def test_a_damaged_chunk_stops_the_rebuild_and_changes_nothing(tmp_path: Path) -> None:
    prefix = tmp_path / "out" / "a"
    stc.pack([str(make_source(tmp_path))], str(prefix), **SMALL)
    without_index(prefix)
    before = files_of(prefix.parent)
    part = prefix.parent / "a.part0002"
    data = part.read_bytes()
    part.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    damaged = files_of(prefix.parent)
    with pytest.raises(ChecksumMismatchError, match=r"a\.part0002"):
        stc.rebuild_index(prefix)
    assert files_of(prefix.parent) == damaged  # no index, no temp, the same manifest
    part.write_bytes(data)
    assert files_of(prefix.parent) == before


def test_verify_reports_a_missing_or_damaged_index(tmp_path: Path) -> None:
    prefix = tmp_path / "out" / "a"
    stc.pack([str(make_source(tmp_path))], str(prefix), **SMALL)
    index = prefix.parent / "a.index"
    good = index.read_bytes()
    index.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    assert stc.verify(prefix).problems == [
        "a.index: corrupt, SHA-256 does not match (rebuild it with stc index)"
    ]
    index.unlink()
    assert stc.verify(prefix).problems == ["a.index: missing (rebuild it with stc index)"]
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["index", str(prefix), "--json"]) == 0
    document = json.loads(out.getvalue())
    assert document["ok"] is True and document["sha256"] == stc.read_manifest(prefix).index.sha256  # type: ignore[union-attr]
    assert index.read_bytes() == good
    assert stc.verify(prefix).ok


@pytest.mark.parametrize("at", [0, 40, 300, 1000, 5000])
def test_any_damaged_byte_is_blamed_on_its_chunk(tmp_path: Path, at: int) -> None:
    prefix = tmp_path / "out" / "a"
    stc.pack([str(make_source(tmp_path))], str(prefix), compression="gzip", **SMALL)
    without_index(prefix)
    part = prefix.parent / "a.part0001"
    data = part.read_bytes()
    part.write_bytes(data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1 :])
    with pytest.raises(ChecksumMismatchError, match=r"a\.part0001"):
        stc.rebuild_index(prefix)
    assert not (prefix.parent / "a.index").exists()
    assert not list(prefix.parent.glob(".a.index*"))


def test_a_rebuild_waits_for_no_pack_it_would_race(tmp_path: Path) -> None:
    prefix = tmp_path / "out" / "a"
    stc.pack([str(make_source(tmp_path))], str(prefix), **SMALL)
    without_index(prefix)
    with PrefixLock(str(prefix)), pytest.raises(ArchiveBusyError, match="another pack"):
        stc.rebuild_index(prefix)
    assert not (prefix.parent / "a.index").exists()


def test_info_says_whether_there_is_an_index(tmp_path: Path) -> None:
    prefix = tmp_path / "out" / "a"
    stc.pack([str(make_source(tmp_path))], str(prefix), content_digests=True, **SMALL)
    members = stc.read_manifest(prefix).index.members  # type: ignore[union-attr]
    with redirect_stdout(io.StringIO()) as out:
        assert main(["info", str(prefix)]) == 0
    assert f"index:        a.index: {members} members" in out.getvalue()
    assert "with content digests" in out.getvalue()
    without_index(prefix)
    with redirect_stdout(io.StringIO()) as out:
        assert main(["info", str(prefix)]) == 0
    assert "index:        none (stc index PREFIX builds one)" in out.getvalue()


def test_a_deep_verify_compares_the_index_with_the_stream(tmp_path: Path) -> None:
    prefix = tmp_path / "out" / "a"
    stc.pack([str(make_source(tmp_path))], str(prefix), content_digests=True, **SMALL)
    assert stc.verify(prefix, deep=True).ok
    kept = {
        p: p.read_bytes() for p in (prefix.parent / "a.index", prefix.parent / "a.manifest.json")
    }

    def wrong_mode(row: Any) -> Any:
        member = row[0]
        return (replace(member, mode=0o700) if member.name.endswith("z_last") else member, *row[1:])

    rewrite_index(prefix, wrong_mode)
    assert stc.verify(prefix).ok  # the rewritten index is what the manifest pins
    problems = stc.verify(prefix, deep=True).problems
    assert len(problems) == 1 and "z_last" in problems[0] and "(mode)" in problems[0]
    for path, data in kept.items():
        path.write_bytes(data)
    rewrite_index(prefix, lambda row: (*row[:3], bytes(32) if row[3] else b""))
    problems = stc.verify(prefix, deep=True).problems
    assert len(problems) == 1 and "does not match its SHA-256" in problems[0]
