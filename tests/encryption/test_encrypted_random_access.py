"""Random access to encrypted archives: the member index is an age file of its own, opened
with the archive's key; list, cat, extract and diff read only the age chunks that hold what
they need, each authenticated; a damaged or swapped index is refused, never trusted."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import pyrage
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streaming_tar_compressor as stc
from streaming_tar_compressor import aio
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.encryption import X25519Identity
from streaming_tar_compressor.encryption.ranges import SealedReader, SealingOutput
from streaming_tar_compressor.encryption.stream import CHUNK


def age_decrypt(data: bytes, identity: X25519Identity) -> bytes:
    """By pyrage (rage), an age implementation that is not ours."""
    return bytes(pyrage.decrypt(data, [pyrage.x25519.Identity.from_str(str(identity))]))


@pytest.fixture(scope="module")
def identity() -> X25519Identity:
    return X25519Identity.generate()


@pytest.fixture
def tree(make_tree):
    return make_tree(
        {
            **{f"d{i}/f{j:02d}": os.urandom(j * 1499) for i in range(4) for j in range(30)},
            "big": os.urandom(900_000),
            "text": b"line\n" * 80_000,
        }
    )


def packed(tree: Path, prefix: Path, identity: X25519Identity, **options) -> stc.PackResult:
    return stc.pack(
        tree,
        prefix,
        compression="zstd",
        chunk_size=150_000,
        block_size=200_000,
        recipients=[identity.recipient],
        **options,
    )


def member(tree: Path, name: str) -> str:
    return (tree / name).relative_to("/").as_posix()


def test_list_reads_the_sealed_index_and_only_the_header_of_the_stream(
    tree, tmp_path, identity
) -> None:
    packed(tree, tmp_path / "a", identity)
    stc.pack(tree, tmp_path / "plain", compression="zstd")
    parts = sorted(tmp_path.glob("a.part*"))
    assert len(parts) > 8
    for part in parts[1:]:  # the header is in the first; the names are in the index
        part.unlink()
    listed = list(stc.list_members(tmp_path / "a", identities=[identity]))
    assert listed == list(stc.list_members(tmp_path / "plain"))


def test_cat_extract_and_diff_read_members_by_range(tree, tmp_path, identity, capsys) -> None:
    packed(tree, tmp_path / "a", identity)
    key = tmp_path / "key.txt"
    key.write_text(f"{identity}\n")
    with stc.open_member(tmp_path / "a", member(tree, "big"), identities=[identity]) as f:
        assert f.read() == (tree / "big").read_bytes()
    wanted = [member(tree, "d3/f29"), member(tree, "text")]
    result = stc.extract(tmp_path / "a", wanted, tmp_path / "out", identities=[str(key)])
    assert result.indexed and result.members == 2
    for name in wanted:
        assert (tmp_path / "out" / name).read_bytes() == (Path("/") / name).read_bytes()
    stored = sum(p.stat().st_size for p in tmp_path.glob("a.part*"))
    assert result.compressed_bytes < stored / 2
    assert list(stc.diff(tmp_path / "a", tree, identities=[identity])) == []
    changed = tree / "d0" / "f07"  # same size and mtime: only its bytes, read back, differ
    stamp = changed.stat()
    changed.write_bytes(bytes(len(changed.read_bytes())))
    os.utime(changed, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert main(["diff", str(tmp_path / "a"), str(tree), "-i", str(key)]) == 1
    assert capsys.readouterr().out.strip() == f"M {member(tree, 'd0/f07')} (content)"
    assert main(["cat", str(tmp_path / "a"), member(tree, "text"), "-i", str(key)]) == 0
    assert capsys.readouterr().out == (tree / "text").read_text()


def test_the_asyncio_readers_take_the_key_too(tree, tmp_path, identity) -> None:
    packed(tree, tmp_path / "a", identity)

    async def read() -> tuple[bytes, list[stc.Difference]]:
        async with await aio.open_member(
            tmp_path / "a", member(tree, "d2/f11"), identities=[identity]
        ) as stream:
            content = await stream.read(1 << 30)
        differences = [d async for d in aio.diff(tmp_path / "a", tree, identities=[identity])]
        return content, differences

    content, differences = asyncio.run(read())
    assert content == (tree / "d2" / "f11").read_bytes() and differences == []


def test_content_digests_diff_reads_no_chunk_but_the_header(tree, tmp_path, identity) -> None:
    packed(tree, tmp_path / "a", identity, content_digests=True)
    for part in sorted(tmp_path.glob("a.part*"))[1:]:
        part.unlink()
    assert list(stc.diff(tmp_path / "a", tree, identities=[identity])) == []


def test_the_sealed_index_opens_with_age_alone(tree, tmp_path, identity) -> None:
    packed(tree, tmp_path / "a", identity)
    index = age_decrypt((tmp_path / "a.index").read_bytes(), identity)
    assert index.startswith(b"STCINDX1")


@pytest.mark.parametrize("damage", ["flip", "swap", "truncate"])
def test_a_damaged_or_swapped_index_is_refused(tree, tmp_path, identity, damage) -> None:
    packed(tree, tmp_path / "a", identity)
    index = tmp_path / "a.index"
    data = bytearray(index.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 1
    elif damage == "swap":  # another archive's index, of the same size
        other = tmp_path / "b"
        packed(tree, other, identity)
        data = bytearray((tmp_path / "b.index").read_bytes())
    else:
        del data[-100:]
    index.write_bytes(bytes(data))
    report = stc.verify(tmp_path / "a")  # without a key: the stored digest
    assert not report.ok and any("a.index" in problem for problem in report.problems)
    with pytest.raises(stc.ManifestError, match=r"a\.index"):  # not "wrong key" (exit 14)
        list(stc.list_members(tmp_path / "a", identities=[identity]))


def test_a_wrong_key_opens_nothing_by_range(tree, tmp_path, identity) -> None:
    packed(tree, tmp_path / "a", identity)
    with pytest.raises(stc.DecryptionError):
        stc.open_member(tmp_path / "a", member(tree, "big"), identities=[X25519Identity.generate()])


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 4 * CHUNK + 3),
    ranges=st.lists(st.tuples(st.integers(0, 5 * CHUNK), st.integers(0, 2 * CHUNK)), max_size=6),
)
def test_any_range_of_a_sealed_file_reads_back(size: int, ranges) -> None:
    recipient = X25519Identity.generate()
    plain = os.urandom(size)
    out = io.BytesIO()
    output = SealingOutput(out, [recipient.recipient])
    output.write(plain[: size // 3])
    output.write(plain[size // 3 :])
    stored = output.finish()
    sealed = out.getvalue()
    assert stored.size == len(sealed)
    assert age_decrypt(sealed, recipient) == plain

    def read(offset: int, length: int) -> bytes:
        return sealed[offset : offset + length]

    reader = SealedReader(read, stored.file_key, stored.header_length, size)
    for offset, length in ranges:
        assert reader.read(offset, length) == plain[offset : offset + length]


def test_a_sealed_file_cut_short_is_named_as_such() -> None:
    recipient = X25519Identity.generate()
    out = io.BytesIO()
    output = SealingOutput(out, [recipient.recipient])
    output.write(os.urandom(3 * CHUNK))
    stored = output.finish()
    sealed = out.getvalue()[:-10]
    reader = SealedReader(
        lambda offset, length: sealed[offset : offset + length],
        stored.file_key,
        stored.header_length,
        3 * CHUNK,
    )
    assert len(reader.read(0, CHUNK)) == CHUNK
    with pytest.raises(stc.DecryptionError, match="ends before its chunk 2"):
        reader.read(2 * CHUNK, 5)
