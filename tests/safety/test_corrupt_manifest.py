"""Whatever a manifest holds, reading it gives a Manifest or a ManifestError, nothing else.

Random bytes, random JSON, and one mutation at a time of a real manifest: a key deleted, a value
of another type (bools where integers belong: bool is an int in Python), negative, huge or
fractional numbers, NaN and Infinity, counts and indexes that do not add up, chunk names with
path parts, another major version, nesting deeper than the interpreter's recursion limit.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming_tar_compressor import sync
from streaming_tar_compressor.core.manifest import Manifest
from streaming_tar_compressor.errors import ManifestError
from streaming_tar_compressor.models import ChunkInfo, CompressionType

pytestmark = pytest.mark.timeout(120)

SHA = "ab" * 32
FEW = settings(max_examples=150, deadline=None)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def valid_document() -> dict[str, Any]:
    manifest = Manifest(
        compression=CompressionType.GZIP,
        chunk_size=10,
        level=6,
        block_size=8,
        chunks=(
            ChunkInfo(0, "b.part0000", 10, SHA),
            ChunkInfo(1, "b.part0001", 10, SHA),
            ChunkInfo(2, "b.part0002", 3, SHA),
        ),
        compressed_size=23,
        uncompressed_size=40,
        sha256=SHA,
        blocks=((0, 10), (8, 16)),
        trailer_offset=20,
        restore_command="cat b.part* | tar -xzf -",
        created="2026-11-27T00:00:00Z",
        tool="streaming-tar-compressor 0.1.0",
    )
    document: dict[str, Any] = json.loads(manifest.to_json())
    return document


def read(text: str | bytes) -> Manifest | ManifestError:
    """The manifest, or the ManifestError refusing it; any other exception fails the test."""
    try:
        return Manifest.from_json(text)
    except ManifestError as error:
        assert "\n" not in str(error), "errors are one line"
        return error


def dumps(document: object) -> str:
    return json.dumps(document)  # NaN and Infinity become the tokens json.loads accepts


# -- mutations that must be refused -------------------------------------------------------------

REQUIRED = ["version", "compression", "chunk_size", "total_chunks", "chunks"]
CHUNK_KEYS = ["index", "name", "size", "checksum"]
INTEGER_KEYS = ["chunk_size", "total_chunks", "level", "block_size", "compressed_size"]
INTEGER_KEYS += ["uncompressed_size", "trailer_offset"]
# Values no integer field takes: bools, fractions, NaN, Infinity, text, containers.
not_integers = st.sampled_from(
    [True, False, 1.0, 2.5, -0.5, 1e300, math.nan, math.inf, -math.inf, "10", [10], {"n": 10}]
)
bad_names = st.sampled_from(
    ["", ".", "..", "../b.part0000", "/etc/passwd", "sub/b.part0000", "a\\b", "b.part\x000000"]
)
Mutation = Callable[[dict[str, Any]], None]


def _set(key: str, value: object) -> Mutation:
    return lambda doc: doc.update({key: value})


def _set_chunk(position: int, key: str, value: object) -> Mutation:
    return lambda doc: doc["chunks"][position].update({key: value})


def _del_chunk_key(position: int, key: str) -> Mutation:
    return lambda doc: doc["chunks"][position].pop(key)


refused_mutations = st.one_of(
    st.sampled_from(REQUIRED).map(lambda key: lambda doc: doc.pop(key)),
    st.builds(_del_chunk_key, st.integers(0, 2), st.sampled_from(CHUNK_KEYS)),
    st.builds(_set, st.sampled_from(INTEGER_KEYS), not_integers),
    st.builds(_set_chunk, st.integers(0, 2), st.sampled_from(["index", "size"]), not_integers),
    st.builds(_set, st.sampled_from(["chunk_size", "block_size"]), st.integers(max_value=0)),
    st.builds(
        _set,
        st.sampled_from(["total_chunks", "compressed_size", "uncompressed_size", "trailer_offset"]),
        st.integers(max_value=-1),
    ),
    st.builds(_set_chunk, st.integers(0, 2), st.just("size"), st.integers(max_value=-1)),
    st.builds(_set_chunk, st.integers(0, 2), st.just("name"), bad_names),
    st.builds(_set_chunk, st.integers(0, 2), st.just("checksum"), st.text(max_size=70)),
    st.builds(_set, st.just("total_chunks"), st.integers(0, 10**30).filter(lambda n: n != 3)),
    st.builds(_set, st.just("version"), st.sampled_from(["2.0", "0.9", "10.0", "", "1x", " 1.0"])),
    st.builds(_set, st.just("version"), st.sampled_from([1.0, 1, None, ["1.0"]])),
    st.builds(_set, st.just("compression"), st.sampled_from(["rar", "GZIP", "", None, 1])),
    st.builds(_set, st.just("complete"), st.sampled_from([1, 0, "true"])),
    st.builds(_set, st.just("blocks"), st.sampled_from([{}, [[0]], [[0, -1]], [[True, 0]]])),
    st.builds(_set, st.just("sha256"), st.sampled_from(["", "AB" * 32, SHA[:-1], 5])),
    st.builds(_set, st.just("format"), st.sampled_from(["tar", "", 0])),
    st.sampled_from(
        [
            lambda doc: doc["chunks"].pop(1),  # a missing index: 0, 2
            lambda doc: doc["chunks"].insert(1, dict(doc["chunks"][0])),  # a duplicate index
            lambda doc: doc["chunks"].reverse(),  # indexes out of order
            lambda doc: doc["chunks"][1].update(name="b.part0000"),  # one name twice
            lambda doc: doc["chunks"][0].update(size=9),  # short chunk before the last
            lambda doc: doc.update(compressed_size=24),  # sizes do not add up
            lambda doc: doc.update(chunks={"0": doc["chunks"][0]}),
            lambda doc: doc["chunks"].append(None),
        ]
    ),
)


def test_the_valid_document_reads() -> None:
    assert isinstance(read(dumps(valid_document())), Manifest)


@FEW
@given(mutation=refused_mutations)
def test_every_damaging_mutation_is_a_manifest_error(mutation: Mutation) -> None:
    document = valid_document()
    mutation(document)
    assert isinstance(read(dumps(document)), ManifestError)


@FEW
@given(key=st.sampled_from(list(valid_document())), value=json_values)
def test_any_value_for_any_key_reads_or_is_refused(key: str, value: object) -> None:
    document = valid_document()
    document[key] = value
    result = read(dumps(document))
    if isinstance(result, Manifest):
        assert result.total_chunks == 3


@FEW
@given(position=st.integers(0, 2), key=st.sampled_from(CHUNK_KEYS), value=json_values)
def test_any_value_in_a_chunk_entry_reads_or_is_refused(
    position: int, key: str, value: object
) -> None:
    document = valid_document()
    document["chunks"][position][key] = value
    result = read(dumps(document))
    if isinstance(result, Manifest):
        assert getattr(result.chunks[position], key) == value


@FEW
@given(value=json_values)
def test_random_json_is_refused(value: object) -> None:
    assert isinstance(read(dumps(value)), ManifestError)


@FEW
@given(data=st.binary(max_size=300) | st.text(max_size=300))
def test_random_bytes_and_text_are_refused(data: bytes | str) -> None:
    assert isinstance(read(data), ManifestError)


@FEW
@given(cut=st.integers(0, 2000), bit=st.integers(0, 7))
def test_truncated_or_bit_flipped_manifests_read_or_are_refused(cut: int, bit: int) -> None:
    text = dumps(valid_document()).encode()
    truncated = text[: cut % len(text)]
    assert isinstance(read(truncated), ManifestError)
    flipped = bytearray(text)
    flipped[cut % len(text)] ^= 1 << bit
    # A flip inside a string (the tool's name) may leave a valid manifest.
    assert isinstance(read(bytes(flipped)), (Manifest, ManifestError))


@pytest.mark.parametrize("depth", [10_000, 200_000])
@pytest.mark.parametrize("where", ["top", "unknown key"])
def test_json_nested_deeper_than_the_recursion_limit_is_a_manifest_error(
    depth: int, where: str
) -> None:
    """json raises RecursionError for such nesting; it used to escape from_json."""
    nested = "[" * depth + "]" * depth
    text = nested if where == "top" else dumps(valid_document())[:-1] + f', "x": {nested}}}'
    with pytest.raises(ManifestError, match="nests too deep"):
        Manifest.from_json(text)


def test_moderately_nested_unknown_keys_are_kept() -> None:
    nested = "[" * 200 + "]" * 200
    manifest = Manifest.from_json(dumps(valid_document())[:-1] + f', "x": {nested}}}')
    assert "x" in manifest.extra
    assert Manifest.from_json(manifest.to_json()) == manifest


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00" * 10, b"{", b"\xff\xfe{}", b"[]", b'"1.0"', b"null"],
    ids=["empty", "nul", "cut", "bad-utf8", "list", "string", "null"],
)
def test_read_manifest_refuses_a_file_that_is_not_a_manifest(
    tmp_path: Path, content: bytes
) -> None:
    (tmp_path / "b.manifest.json").write_bytes(content)
    with pytest.raises(ManifestError, match=r"b\.manifest\.json"):
        sync.read_manifest(tmp_path / "b")


def test_read_manifest_refuses_a_missing_manifest_or_a_folder_in_its_place(
    tmp_path: Path,
) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        sync.read_manifest(tmp_path / "b")
    (tmp_path / "b.manifest.json").mkdir()
    with pytest.raises(ManifestError, match="cannot read"):
        sync.read_manifest(tmp_path / "b")


@settings(max_examples=50, deadline=None)
@given(mutation=refused_mutations)
def test_read_manifest_refuses_every_damaging_mutation_on_disk(mutation: Mutation) -> None:
    document = valid_document()
    mutation(document)
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "b.manifest.json").write_text(dumps(document))
        with pytest.raises(ManifestError, match=r"b\.manifest\.json"):
            sync.read_manifest(Path(directory) / "b")
