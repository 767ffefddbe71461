"""``stc list`` from the member index: the same members as a decode of the stream, with every
chunk gone; names and patterns select as GNU tar's do and read only the pages they need; a
damaged or foreign index is an error, a lost one falls back to decoding."""

from __future__ import annotations

import asyncio
import fnmatch
import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streaming_tar_compressor as stc
from streaming_tar_compressor import aio
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.core import member_index
from streaming_tar_compressor.core.member_index import IndexWriter, MemberIndex, sort_key
from streaming_tar_compressor.core.selection import Selection
from streaming_tar_compressor.errors import (
    ChecksumMismatchError,
    CompressionMismatchError,
    ManifestError,
    MemberNotFoundError,
    UsageError,
)
from streaming_tar_compressor.models import MemberKind, TarMember
from streaming_tar_compressor.pipeline import listing
from streaming_tar_compressor.pipeline.listing import _decoded_members, listed, listed_batches
from streaming_tar_compressor.storage.random_access import open_random_access
from tests.helpers import build_tree
from tests.strategies import file_trees

FIELDS = ("name", "kind", "size", "mode", "mtime", "uid", "gid", "uname", "gname", "linkname")


def described(members: list[TarMember]) -> list[tuple[object, ...]]:
    return [tuple(getattr(m, f) for f in (*FIELDS, "offset")) for m in members]


def packed(root: Path, files: dict[str, bytes], codec: str = "zstd") -> Path:
    tree = build_tree(root / "tree", files)
    prefix = root / "out" / "a"
    stc.pack([str(tree)], str(prefix), compression=codec, chunk_size=5000, block_size=4096)
    return prefix


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(files=file_trees(max_files=10, max_size=20_000), codec=st.sampled_from(["gzip", "zstd"]))
def test_the_index_lists_what_decoding_the_stream_lists(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes], codec: str
) -> None:
    prefix = packed(tmp_path_factory.mktemp("list"), files, codec)
    decoded = list(_decoded_members(str(prefix), None))
    assert described(list(stc.list_members(prefix))) == described(decoded)


def test_batches_are_the_index_pages_unless_members_are_selected_or_there_is_no_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(member_index, "ENTRIES_PER_PAGE", 5)
    prefix = str(packed(tmp_path, {f"d/f{i:02d}": bytes([i]) for i in range(20)}))
    pages = list(listed_batches(prefix, size=7))
    assert len(pages) > 1 and all(isinstance(page, member_index.PageColumns) for page in pages)
    everything = list(listed(prefix))
    assert [e for p in pages if isinstance(p, member_index.PageColumns) for e in p.entries()] == (
        everything
    )
    root = str(tmp_path / "tree").lstrip("/")
    selected = list(listed_batches(prefix, members=[f"{root}/d"], size=7))
    assert [len(batch) for batch in selected] == [7, 7, 7]  # the folder and its 20 files
    assert [e for batch in selected for e in batch] == list(listed(prefix, members=[f"{root}/d"]))
    (tmp_path / "out" / "a.index").unlink()
    opened = []
    monkeypatch.setattr(
        listing,
        "open_random_access",
        lambda p, keys: opened.append(p) or open_random_access(p, keys),
    )
    batches = list(listed_batches(prefix, size=7))
    assert opened == [prefix]  # once, to find there is no index
    decoded = [m for batch in batches if isinstance(batch, list) for m in batch]
    assert len(decoded) == sum(map(len, batches))
    assert all(isinstance(m, TarMember) for m in decoded)
    assert [m.name for m in decoded] == [e.name for e in everything]


def test_listing_works_with_every_chunk_deleted(tmp_path: Path) -> None:
    prefix = packed(tmp_path, {"a/x": b"x" * 5000, "b": b"y"})
    expected = described(list(stc.list_members(prefix)))
    for part in (tmp_path / "out").glob("a.part*"):
        part.unlink()
    assert described(list(stc.list_members(prefix))) == expected
    with pytest.raises(CompressionMismatchError):
        list(stc.list_members(prefix, compression="gzip"))


def test_names_select_members_and_their_subtrees_and_report_what_is_missing(
    tmp_path: Path,
) -> None:
    prefix = packed(tmp_path, {"d/x": b"1", "d/y/z": b"2", "d-e": b"3", "f": b"4"})
    root = str(tmp_path / "tree").lstrip("/")
    listed = stc.list_members(prefix, [f"./{root}/d/", f"{root}/f", f"{root}/nothing"])
    names = []
    with pytest.raises(MemberNotFoundError, match="nothing") as caught:
        names.extend(m.name for m in listed)
    assert names == [f"{root}/d", f"{root}/d/x", f"{root}/d/y", f"{root}/d/y/z", f"{root}/f"]
    assert caught.value.missing == [f"{root}/nothing"]
    assert caught.value.exit_code == 2
    globbed = stc.list_members(prefix, ["*/d?e", "*/y"], wildcards=True)
    assert [m.name for m in globbed] == [f"{root}/d/y", f"{root}/d/y/z", f"{root}/d-e"]
    with pytest.raises(UsageError, match="names no member"):
        list(stc.list_members(prefix, ["./"]))


def reference_selects(patterns: list[str], name: str, wildcards: bool) -> bool:
    """GNU tar's rule, spelled out: the name or one of its leading folders matches."""
    parts = name.split("/")
    heads = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    if wildcards:
        return any(fnmatch.fnmatchcase(head, p) for p in patterns for head in heads)
    return any(head == p for p in patterns for head in heads)


class Reads:
    def __init__(self, data: bytes) -> None:
        self.data, self.calls = data, []

    def __call__(self, offset: int, length: int) -> bytes:
        self.calls.append(offset)
        return self.data[offset : offset + length]


components = st.sampled_from(["a", "b", "c", "ab", "a-b"])
names = st.lists(components, min_size=1, max_size=3).map("/".join)
patterns = st.lists(st.sampled_from(["a", "b", "c", "ab", "*", "a*", "?", "[ab]"]), min_size=1,
                    max_size=3).map("/".join)  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    members=st.lists(names, max_size=40).map(lambda n: sorted(n, key=sort_key)),
    wanted=st.lists(patterns, min_size=1, max_size=3),
    wildcards=st.booleans(),
)
def test_a_selection_finds_what_the_rule_selects_reading_only_the_pages_that_can_hold_it(
    monkeypatch: pytest.MonkeyPatch, members: list[str], wanted: list[str], wildcards: bool
) -> None:
    monkeypatch.setattr(member_index, "ENTRIES_PER_PAGE", 3)
    out = io.BytesIO()
    writer = IndexWriter(out)
    writer.add([(TarMember(name, MemberKind.FILE), i * 1024, i * 1024 + 512, b"")
                for i, name in enumerate(members)])  # fmt: skip
    writer.finish()
    data = out.getvalue()
    reads = Reads(data)
    index = MemberIndex(reads, len(data))
    before = len(reads.calls)
    selection = Selection(wanted, wildcards=wildcards)
    found = [entry.name for entry in selection.entries(index)]
    assert found == [n for n in members if reference_selects(selection.patterns, n, wildcards)]
    assert set(selection.unmatched()) == {
        p
        for p in selection.patterns
        if not any(reference_selects([p], n, wildcards) for n in members)
    }
    if not wildcards and index.sorted:  # pages that cannot hold a selected name are not read
        selected_pages = {i // 3 for i, n in enumerate(members) if n in set(found)}
        assert len(reads.calls) - before <= len(selected_pages) + len(selection.patterns)


def test_a_damaged_index_is_an_error_and_a_lost_one_falls_back_to_decoding(
    tmp_path: Path,
) -> None:
    prefix = packed(tmp_path, {f"f{i:03d}": bytes([i]) * 100 for i in range(50)})
    index_file = tmp_path / "out" / "a.index"
    good = index_file.read_bytes()
    expected = described(list(stc.list_members(prefix)))
    index_file.write_bytes(good[:10] + bytes([good[10] ^ 1]) + good[11:])
    with pytest.raises(ChecksumMismatchError, match=r"a\.index"):
        list(stc.list_members(prefix))
    index_file.write_bytes(good + b"x")
    with pytest.raises(ManifestError, match="another archive"):
        list(stc.list_members(prefix))
    other = packed(tmp_path / "other", {"z": b"z"})
    index_file.write_bytes(other.with_name("a.index").read_bytes())
    with pytest.raises((ManifestError, ChecksumMismatchError)):
        list(stc.list_members(prefix))
    index_file.unlink()
    assert described(list(stc.list_members(prefix))) == expected


def test_the_cli_lists_selections_as_json_lines(tmp_path: Path) -> None:
    prefix = packed(tmp_path, {"d/x": b"1", "d/y": b"2", "e": b"3"})
    root = str(tmp_path / "tree").lstrip("/")
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["list", str(prefix), "--wildcards", "*/d/*", "--json-lines"])
    assert code == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["name"] for line in lines] == [f"{root}/d/x", f"{root}/d/y"]
    assert lines[0]["kind"] == "file" and lines[0]["size"] == 1
    with redirect_stdout(io.StringIO()):
        assert main(["list", str(prefix), f"{root}/e", f"{root}/missing"]) == 2


def test_the_asyncio_api_lists_from_the_index(tmp_path: Path) -> None:
    prefix = packed(tmp_path, {"d/x": b"1", "e": b"3"})

    async def listed() -> list[TarMember]:
        return [member async for member in aio.list_members(prefix)]

    assert described(asyncio.run(listed())) == described(list(stc.list_members(prefix)))
