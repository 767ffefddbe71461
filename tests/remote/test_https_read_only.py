"""Any static web server or CDN serving the parts and the manifest is a read-only store."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor.cli.main import main
from tests.helpers import snapshot


def test_unpack_verify_and_list_over_http(
    make_tree: Callable[..., Path], web_folder: tuple[Path, str], tmp_path: Path
) -> None:
    folder, url = web_folder
    tree = make_tree()
    stc.pack(tree, folder / "b", compression="zstd", chunk_size=64 * 1024, block_size=32 * 1024)
    result = stc.unpack(f"{url}/b", tmp_path / "out")
    assert result.verified
    assert snapshot(tmp_path / "out" / tree.relative_to("/")) == snapshot(tree)
    assert stc.verify(f"{url}/b", deep=True).ok
    assert len(list(stc.list_members(f"{url}/b"))) == len(snapshot(tree)) + 1


def test_a_web_server_cannot_list_so_the_manifest_is_needed(
    make_tree: Callable[..., Path], web_folder: tuple[Path, str], tmp_path: Path
) -> None:
    folder, url = web_folder
    stc.pack(make_tree(), folder / "b")
    (folder / "b.manifest.json").unlink()
    with pytest.raises(stc.ManifestError, match="a web server cannot list"):
        stc.unpack(f"{url}/b", tmp_path / "out")


def test_a_part_missing_on_the_server_is_named(
    make_tree: Callable[..., Path],
    web_folder: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, url = web_folder
    stc.pack(make_tree(), folder / "b", chunk_size=64 * 1024)
    shutil.move(folder / "b.part0001", tmp_path / "elsewhere")
    code = main(["unpack", f"{url}/b", "-C", str(tmp_path / "out"), "-q"])
    assert code == stc.MissingChunkError.exit_code
    assert "chunk 1" in capsys.readouterr().err


def test_verify_over_http_hashes_what_it_cannot_read_from_metadata(
    make_tree: Callable[..., Path], web_folder: tuple[Path, str]
) -> None:
    folder, url = web_folder
    total = stc.pack(make_tree(), folder / "b", chunk_size=64 * 1024).manifest.total_chunks
    report = stc.verify(f"{url}/b")
    assert report.ok and report.from_metadata and report.downloaded == total > 1
    part = folder / "b.part0001"
    part.write_bytes(part.read_bytes()[::-1])
    assert stc.verify(f"{url}/b").problems == ["b.part0001: corrupt, SHA-256 does not match"]
