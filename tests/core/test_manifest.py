"""The manifest round-trips and its reader refuses everything it cannot trust."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streaming_tar_compressor.core.manifest import Manifest
from streaming_tar_compressor.errors import ManifestError
from streaming_tar_compressor.models import ChunkInfo, CompressionType

SHA = "ab" * 32


def sample() -> Manifest:
    return Manifest(
        compression=CompressionType.ZSTD,
        chunk_size=10,
        level=3,
        block_size=8,
        chunks=(ChunkInfo(0, "b.part0000", 10, SHA), ChunkInfo(1, "b.part0001", 4, SHA)),
        compressed_size=14,
        uncompressed_size=40,
        sha256=SHA,
        blocks=((0, 0), (8, 6)),
        restore_command="cat b.part* | tar --zstd -xf -",
        created="2026-11-27T00:00:00Z",
        tool="streaming-tar-compressor 0.1.0",
    )


def doc() -> dict:
    return json.loads(sample().to_json())


def test_round_trip_keeps_every_field():
    assert Manifest.from_json(sample().to_json()) == sample()


def test_seed_keys_are_present():
    keys = doc().keys()
    for key in ("version", "compression", "chunk_size", "total_chunks", "chunks"):
        assert key in keys
    assert doc()["chunks"][0] == {"index": 0, "name": "b.part0000", "size": 10, "checksum": SHA}


def test_sha256sum_lines():
    assert sample().sha256sum_text() == f"{SHA}  b.part0000\n{SHA}  b.part0001\n"


def test_unknown_keys_are_kept_and_ignored():
    d = doc()
    d["future_key"] = {"x": 1}
    d["version"] = "1.7"
    assert Manifest.from_json(json.dumps(d)).extra == {"future_key": {"x": 1}}


def broken(change) -> str:
    d = doc()
    change(d)
    return json.dumps(d)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version="2.0"), "version"),
        (lambda d: d.pop("chunks"), "chunks"),
        (lambda d: d.update(total_chunks=3), "total_chunks"),
        (lambda d: d.update(chunk_size="10"), "chunk_size"),
        (lambda d: d.update(chunk_size=True), "chunk_size"),
        (lambda d: d.update(compression="rar"), "compression"),
        (lambda d: d["chunks"][0].update(size=-1), "size"),
        (lambda d: d["chunks"][0].update(name="../etc/passwd"), "bare file name"),
        (lambda d: d["chunks"][0].update(name="sub/b.part0000"), "bare file name"),
        (lambda d: d["chunks"][0].update(checksum="xyz"), "checksum"),
        (lambda d: d["chunks"][1].update(index=5), "index"),
        (lambda d: d["chunks"][1].update(name="b.part0000"), "twice"),
        (lambda d: d["chunks"][0].update(size=9), "chunk_size"),
        (lambda d: d.update(compressed_size=99), "compressed_size"),
        (lambda d: d.update(blocks=[[0]]), "blocks"),
        (lambda d: d.update(format="other-tool"), "manifest"),
    ],
)
def test_bad_manifests_are_refused(change, message):
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(broken(change))


@pytest.mark.parametrize("text", ["", "not json", "[]", "null", "{}", '{"version": 1}'])
def test_non_manifests_are_refused(text):
    with pytest.raises(ManifestError):
        Manifest.from_json(text)


@given(st.binary(max_size=300))
def test_random_bytes_never_escape_the_hierarchy(data):
    with contextlib.suppress(ManifestError):
        Manifest.from_json(data)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    )
)
def test_random_json_values_in_any_key_are_refused_cleanly(value):
    for key in ("chunks", "chunk_size", "total_chunks", "blocks", "sha256", "level"):
        with contextlib.suppress(ManifestError):
            Manifest.from_json(broken(lambda d, key=key: d.update({key: value})))
