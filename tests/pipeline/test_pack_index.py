"""The member index a pack writes (``PREFIX.index``): one entry per tar member, in tar order,
whose offsets, metadata and content digests are those of the tar stream the chunks hold, as
Python's ``tarfile`` reads it; pinned by the manifest and listed in ``PREFIX.sha256``."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streaming_tar_compressor as stc
from streaming_tar_compressor.cli.resume_hints import pack_resume_command
from streaming_tar_compressor.codecs import codec_for
from streaming_tar_compressor.core.manifest import Manifest
from streaming_tar_compressor.core.member_index import DirectoryRef, IndexEntry, MemberIndex
from streaming_tar_compressor.errors import ManifestError, SourceChangedError
from streaming_tar_compressor.models import CompressionType, MemberKind
from streaming_tar_compressor.pipeline import pack as pack_pipeline
from tests.helpers import build_tree
from tests.safety.test_resume_pack import SMALL, archive_files, make_source, pack_until
from tests.strategies import file_trees

CODECS = [kind.value for kind in CompressionType]
KIND_OF = {
    tarfile.REGTYPE: MemberKind.FILE,
    tarfile.DIRTYPE: MemberKind.DIRECTORY,
    tarfile.SYMTYPE: MemberKind.SYMLINK,
    tarfile.LNKTYPE: MemberKind.HARDLINK,
}


def tar_stream(manifest: Manifest, directory: Path) -> bytes:
    data = b"".join((directory / chunk.name).read_bytes() for chunk in manifest.chunks)
    assert manifest.compression is not None
    decoder = codec_for(manifest.compression).new_decoder()
    decoder.feed(data)
    out = bytearray()
    while piece := decoder.read(1 << 20):
        out += piece
    decoder.close()
    return bytes(out)


def read_index(manifest: Manifest, directory: Path) -> list[IndexEntry]:
    ref = manifest.index
    assert ref is not None
    data = (directory / ref.name).read_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest()) == (ref.size, ref.sha256)
    pinned = DirectoryRef(ref.directory_offset, ref.directory_length, ref.directory_sha256)
    index = MemberIndex(lambda at, size: data[at : at + size], len(data), directory=pinned)
    assert index.members == ref.members
    return list(index)


def assert_index_describes_stream(
    entries: list[IndexEntry], stream: bytes, *, digests: bool
) -> None:
    with tarfile.open(fileobj=io.BytesIO(stream)) as archive:
        members = archive.getmembers()
    assert [e.name for e in entries] == [m.name for m in members]
    for entry, member in zip(entries, members, strict=True):
        assert entry.kind is KIND_OF[member.type]
        assert (entry.header_offset, entry.data_offset) == (member.offset, member.offset_data)
        assert entry.size == (member.size if member.isfile() else 0)
        assert (entry.mode, entry.mtime_ns) == (member.mode, int(member.mtime) * 10**9)
        assert (entry.uid, entry.gid, entry.uname, entry.gname) == (
            member.uid,
            member.gid,
            member.uname,
            member.gname,
        )
        assert entry.linkname == member.linkname
        if digests and member.isfile():
            content = stream[member.offset_data : member.offset_data + member.size]
            assert entry.sha256 == hashlib.sha256(content).digest()
        else:
            assert entry.sha256 == b""


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    files=file_trees(max_files=10, max_size=30_000),
    codec=st.sampled_from(CODECS),
    block_size=st.sampled_from([512, 1000, 4096, 65536]),
    digests=st.booleans(),
)
def test_the_index_describes_every_member_of_the_stream(
    tmp_path_factory: pytest.TempPathFactory,
    files: dict[str, bytes],
    codec: str,
    block_size: int,
    digests: bool,
) -> None:
    root = tmp_path_factory.mktemp("pack")
    tree = build_tree(root / "tree", files)
    result = stc.pack(
        [str(tree)],
        str(root / "out" / "a"),
        compression=codec,
        block_size=block_size,
        chunk_size=7000,
        content_digests=digests,
    )
    manifest = result.manifest
    assert manifest.index is not None and manifest.index.content_sha256 is digests
    entries = read_index(manifest, root / "out")
    assert_index_describes_stream(entries, tar_stream(manifest, root / "out"), digests=digests)


def test_a_file_larger_than_many_blocks_gets_its_whole_contents_digest(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "big").write_bytes(os.urandom(300_000))
    (tree / "small").write_bytes(b"x" * 100)
    result = stc.pack(
        [str(tree)], str(tmp_path / "out" / "a"), block_size=8192, content_digests=True
    )
    entries = {e.name: e for e in read_index(result.manifest, tmp_path / "out")}
    big = entries[f"{str(tree).lstrip('/')}/big"]
    assert big.sha256 == hashlib.sha256((tree / "big").read_bytes()).digest()
    assert big.data_offset // 8192 < (big.data_offset + big.size) // 8192 - 30


def test_the_manifest_pins_the_index_and_sha256sum_lists_it(tmp_path: Path) -> None:
    source = make_source(tmp_path)
    result = stc.pack([str(source)], str(tmp_path / "out" / "a"), **SMALL)
    ref = result.manifest.index
    assert ref is not None and ref.name == "a.index"
    document = json.loads((tmp_path / "out" / "a.manifest.json").read_text())
    assert document["index"]["format"] == "stc-index/1"
    assert document["index"]["sha256"] == ref.sha256
    lines = (tmp_path / "out" / "a.sha256").read_text().splitlines()
    assert lines[-1] == f"{ref.sha256}  a.index"
    assert Manifest.from_json(result.manifest.to_json()).index == ref


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "../a.index"}, "not a bare file name"),
        ({"sha256": "0" * 63}, "not a SHA-256"),
        ({"size": -1}, "at least 0"),
        ({"content_sha256": "yes"}, "must be a bool"),
        ({"directory": [1, 2]}, "must be a dict"),
    ],
)
def test_a_manifest_with_a_bad_index_record_is_refused(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    result = stc.pack([str(make_source(tmp_path))], str(tmp_path / "out" / "a"), **SMALL)
    document = json.loads(result.manifest.to_json())
    document["index"].update(change)
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(json.dumps(document))


def test_an_index_of_a_newer_format_is_left_alone(tmp_path: Path) -> None:
    result = stc.pack([str(make_source(tmp_path))], str(tmp_path / "out" / "a"), **SMALL)
    document = json.loads(result.manifest.to_json())
    document["index"] = {"format": "stc-index/2", "anything": True}
    manifest = Manifest.from_json(json.dumps(document))
    assert manifest.index is None
    assert manifest.extra == {}


@pytest.mark.parametrize("digests", [False, True])
def test_a_resumed_pack_writes_the_index_of_an_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digests: bool
) -> None:
    """The resume point falls inside a file's data (8 KiB blocks, files up to 9,000 bytes):
    the rows before it are made again from the sources, that file's digest from all of it."""
    source = make_source(tmp_path)
    stc.pack([str(source)], str(tmp_path / "ref" / "a"), content_digests=digests, **SMALL)
    expected = archive_files(tmp_path / "ref")
    for stop_at in (1, 6):
        out = tmp_path / f"run{stop_at}"
        pack_until(monkeypatch, [source], out / "a", stop_at, content_digests=digests, **SMALL)
        stc.pack([str(source)], str(out / "a"), resume=True, content_digests=digests, **SMALL)
        assert archive_files(out) == expected


@pytest.mark.parametrize("digests", [False, True])
def test_the_resume_command_keeps_the_content_digests_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digests: bool
) -> None:
    source = make_source(tmp_path)
    prefix = tmp_path / "out" / "a"
    pack_until(monkeypatch, [source], prefix, 3, content_digests=digests, **SMALL)
    checkpoint = Manifest.from_json((tmp_path / "out" / "a.manifest.json").read_text())
    command = pack_resume_command(str(prefix), checkpoint)
    assert command is not None and command.endswith("--resume")
    assert ("--content-digests" in command.split()) is digests


def test_a_failed_pack_leaves_no_index_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_source(tmp_path)
    victim = source / "m" / "f030"
    real_open = open

    def shrinking_open(path: object, *args: object, **kwargs: object) -> object:
        if path == str(victim):
            victim.write_bytes(b"")  # shrinks between the walk and the read
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", shrinking_open)
    monkeypatch.setattr(
        "streaming_tar_compressor.pipeline.pack._append_members",
        pack_pipeline.append_members_python,
    )
    with pytest.raises(SourceChangedError):
        stc.pack([str(source)], str(tmp_path / "out" / "a"), **SMALL)
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if "index" in p.name) == []
