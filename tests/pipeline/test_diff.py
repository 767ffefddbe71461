"""``stc diff``: an archive against the sources it was packed from, or the tree restored from
it; a changed byte with equal size and mtime is found, by the index's digests or by the
archive's bytes."""

from __future__ import annotations

import asyncio
import io
import json
import os
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streaming_tar_compressor as stc
from streaming_tar_compressor import aio
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.errors import ManifestError, SourceError
from streaming_tar_compressor.pipeline.diff import Difference
from streaming_tar_compressor.storage.random_access import require_random_access
from tests.helpers import build_tree
from tests.strategies import file_trees


def packed(root: Path, files: dict[str, bytes], digests: bool) -> tuple[Path, Path]:
    tree = build_tree(root / "tree", files)
    prefix = root / "out" / "a"
    stc.pack([str(tree)], str(prefix), chunk_size=6000, block_size=2048, content_digests=digests)
    return tree, prefix


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(files=file_trees(max_files=8, max_size=8000), digests=st.booleans())
def test_an_archive_and_its_sources_or_its_restored_tree_do_not_differ(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes], digests: bool
) -> None:
    root = tmp_path_factory.mktemp("diff")
    tree, prefix = packed(root, files, digests)
    assert list(stc.diff(prefix, [tree])) == []
    stc.unpack(prefix, root / "restored")
    assert list(stc.diff(prefix, directory=root / "restored")) == []


@pytest.mark.parametrize("digests", [False, True])
def test_a_changed_byte_with_the_same_size_and_mtime_is_found(
    tmp_path: Path, digests: bool
) -> None:
    tree, prefix = packed(tmp_path, {"a": b"x" * 5000, "b/c": b"y" * 300}, digests)
    path = tree / "b" / "c"
    mtime = path.stat().st_mtime_ns
    path.write_bytes(b"y" * 299 + b"z")
    os.utime(path, ns=(mtime, mtime))
    name = f"{str(tree).lstrip('/')}/b/c"
    assert list(stc.diff(prefix, [tree])) == [Difference(name, "changed", ("content",))]


def test_every_kind_of_difference_is_named(tmp_path: Path) -> None:
    tree, prefix = packed(tmp_path, {"a": b"x" * 50, "b": b"b", "d/e": b"e", "f": b"f"}, True)
    root = str(tree).lstrip("/")
    (tree / "a").write_bytes(b"x" * 51)  # size (and mtime)
    os.chmod(tree / "b", 0o600)  # mode
    (tree / "d" / "e").unlink()  # missing
    (tree / "new").write_bytes(b"n")  # new
    os.utime(tree / "f", (1, 1))  # mtime
    (tree / "symlink-to-first").unlink()
    os.symlink("b", tree / "symlink-to-first")  # link
    os.utime(tree / "b", (1_700_000_000, 1_700_000_000))
    found = {d.name: (d.change, d.fields) for d in stc.diff(prefix, [tree])}
    assert found[f"{root}/a"] == ("changed", ("size", "mtime"))
    assert found[f"{root}/b"] == ("changed", ("mode",))
    assert found[f"{root}/d/e"] == ("missing", ())
    assert found[f"{root}/new"] == ("new", ())
    assert found[f"{root}/f"] == ("changed", ("mtime",))
    assert found[f"{root}/symlink-to-first"][1][-1] == "link"
    (tree / "f").unlink()
    (tree / "f").mkdir()
    assert (f"{root}/f", "changed", ("type",)) in [
        (d.name, d.change, d.fields) for d in stc.diff(prefix, [tree])
    ]


def test_the_cli_exits_1_when_they_differ_and_0_when_not(tmp_path: Path) -> None:
    tree, prefix = packed(tmp_path, {"a": b"x", "b": b"y"}, False)
    with redirect_stdout(io.StringIO()) as out:
        assert main(["diff", str(prefix), str(tree)]) == 0
    assert out.getvalue() == ""
    (tree / "b").unlink()
    with redirect_stdout(io.StringIO()) as out:
        assert main(["diff", str(prefix), str(tree)]) == 1
    assert out.getvalue() == f"- {str(tree).lstrip('/')}/b\n"
    with redirect_stdout(io.StringIO()) as out:
        assert main(["diff", str(prefix), str(tree), "--json"]) == 1
    document = json.loads(out.getvalue())
    assert document["identical"] is False and document["differences"][0]["change"] == "missing"
    with redirect_stdout(io.StringIO()):
        assert main(["diff", str(prefix)]) == SourceError.exit_code


def test_diff_needs_the_index_and_the_asyncio_api_gives_the_same(tmp_path: Path) -> None:
    tree, prefix = packed(tmp_path, {"a": b"x", "b": b"y"}, True)
    (tree / "a").write_bytes(b"changed")

    async def differences() -> list[Difference]:
        return [d async for d in aio.diff(prefix, [tree])]

    assert asyncio.run(differences()) == list(stc.diff(prefix, [tree]))
    (prefix.parent / "a.index").unlink()
    with pytest.raises(ManifestError, match="stc index"):
        list(stc.diff(prefix, [tree]))


def test_sources_packed_out_of_order_compare_clean_both_ways(tmp_path: Path) -> None:
    """An index out of key order (``b`` before ``a``): compared by name, not merged."""
    for folder in ("b", "a"):
        build_tree(tmp_path / folder, {"x": folder.encode(), "y/z": b"z"}, links=False)
    prefix = tmp_path / "out" / "p"
    sources = [tmp_path / "b", tmp_path / "a"]
    stc.pack(sources, prefix)
    archive = require_random_access(str(prefix))
    with archive:
        index = archive.member_index()
        assert index is not None and not index.sorted  # the case this test is about
    assert list(stc.diff(prefix, sources)) == []
    stc.unpack(prefix, tmp_path / "restored")
    assert list(stc.diff(prefix, directory=tmp_path / "restored")) == []
    (tmp_path / "restored" / str(tmp_path / "a" / "x").lstrip("/")).write_bytes(b"changed")
    changed = list(stc.diff(prefix, directory=tmp_path / "restored"))
    assert [(d.change, d.fields) for d in changed] == [("changed", ("size", "mtime"))]
