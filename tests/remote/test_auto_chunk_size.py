"""``--chunk-size auto``: about 2,000 chunks, a power of two from 8 MiB to 64 MiB."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.core.manifest import Manifest
from streaming_tar_compressor.models import CompressionType
from streaming_tar_compressor.pipeline.pack import PackSettings, auto_chunk_size

MIB = 2**20


@pytest.mark.parametrize(
    ("input_bound", "chunk"),
    [
        (0, 8 * MIB),
        (2000 * 8 * MIB, 8 * MIB),
        (2000 * 8 * MIB + 1, 16 * MIB),
        (2000 * 40 * MIB, 64 * MIB),
        (10**15, 64 * MIB),
    ],
)
def test_the_rule(input_bound: int, chunk: int) -> None:
    assert auto_chunk_size(input_bound) == chunk


def test_store_urls_default_to_auto_and_local_prefixes_to_50m(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    tree = make_tree()
    remote = stc.pack(tree, f"memory:///auto/{tmp_path.name}/b")
    assert remote.manifest.chunk_size == 8 * MIB
    local = stc.pack(tree, tmp_path / "local" / "b")
    assert local.manifest.chunk_size == 50 * MIB
    auto = stc.pack(tree, tmp_path / "auto" / "b", chunk_size="auto")
    assert auto.manifest.chunk_size == 8 * MIB
    assert (
        main(["pack", str(tree), "-o", str(tmp_path / "cli" / "b"), "--chunk-size", "auto", "-q"])
        == 0
    )
    assert stc.read_manifest(tmp_path / "cli" / "b").chunk_size == 8 * MIB


def test_a_resumed_pack_keeps_the_chunk_size_it_started_with() -> None:
    earlier = Manifest(compression=CompressionType.GZIP, chunk_size=16384, chunks=())
    settings = PackSettings.build(chunk_size="auto")
    assert settings.sized_for(10**12, earlier).chunk_size == 16384
    assert settings.sized_for(10**12).chunk_size == 64 * MIB


@pytest.mark.parametrize("bad", ["automatic", 0, -5, "50M"])
def test_anything_else_is_a_usage_error(bad: object) -> None:
    with pytest.raises(stc.UsageError, match="chunk size"):
        PackSettings.build(chunk_size=bad)  # type: ignore[arg-type]
