"""Resuming an interrupted encrypted pack: it seals on with the interrupted run's file key
and nonce (kept in the private PREFIX.resume, mode 0600, removed at the end), gives the
bytes of an uninterrupted pack with the same keys, and refuses whatever would seal other
bytes under a nonce already used: changed sources, other recipients, a damaged state."""

from __future__ import annotations

import base64
import io
import json
import os
import random
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.encryption import X25519Identity, open_header
from streaming_tar_compressor.encryption.archive import ArchiveSealer, SealerKeys
from streaming_tar_compressor.pipeline import pack as pack_module
from streaming_tar_compressor.storage.local import LocalChunkSink
from tests.helpers import snapshot, tool
from tests.safety.test_resume_pack import (
    SMALL,
    archive_files,
    kill_when,
    make_source,
    pack_until,
    stc_command,
)


@pytest.fixture(scope="module")
def identity() -> X25519Identity:
    return X25519Identity.generate()


def keys_of(prefix: Path, identity: X25519Identity) -> SealerKeys:
    """An archive's age keys, read back with its identity: file key, header, nonce."""
    manifest = stc.read_manifest(prefix)
    assert manifest.encryption is not None
    length = manifest.encryption.header_length
    head = (prefix.parent / manifest.chunks[0].name).read_bytes()[: length + 16]
    file_key = open_header(head[:length], [identity]).file_key
    return SealerKeys(file_key, head[:length], head[length:])


def packed_with_keys(
    monkeypatch: pytest.MonkeyPatch, keys: SealerKeys, src: Path, prefix: Path, **options
) -> None:
    """An uninterrupted pack whose sealer takes ``keys`` instead of fresh ones."""
    with monkeypatch.context() as patch:
        patch.setattr(
            pack_module,
            "ArchiveSealer",
            lambda recipients, given=None, **kw: ArchiveSealer(recipients, given or keys, **kw),
        )
        stc.pack([src], prefix, **options)


def parts(directory: Path) -> dict[str, object]:
    return {name: data for name, data in archive_files(directory).items() if ".part" in name}


@pytest.mark.parametrize("codec", ["gzip", "zstd", "none"])
@pytest.mark.parametrize("where", ["first", "second", "middle", "last"])
def test_a_resumed_encrypted_pack_is_the_uninterrupted_one_byte_for_byte(
    tmp_path, monkeypatch, identity, codec, where
) -> None:
    src = make_source(tmp_path)
    options = {"compression": codec, "recipients": [identity.recipient], **SMALL}
    probe = stc.pack([src], tmp_path / "probe" / "a", **options)
    total = probe.manifest.total_chunks
    stop_at = {"first": 0, "second": 1, "middle": total // 2, "last": total - 1}[where]
    prefix = tmp_path / "out" / "a"
    pack_until(monkeypatch, [src], prefix, stop_at, **options)
    state = prefix.parent / "a.resume"
    kept = 0  # dying on the first chunk leaves no checkpoint: the resume starts over
    if stop_at:
        public = (prefix.parent / "a.manifest.json").read_text()
        document = json.loads(public)
        assert document["complete"] is False and document["resume"] == {"state": "a.resume"}
        assert document["blocks"] == [] and document["encryption"]["mac"] == ""
        assert str(src) not in public and "raw_offset" not in public
        assert stat.S_IMODE(state.stat().st_mode) == 0o600
        assert str(src) in state.read_text()
        kept = document["total_chunks"]
    result = stc.pack([src], prefix, resume=True, **options)
    assert not state.exists()
    assert result.manifest.complete and result.resumed_chunks == kept
    packed_with_keys(monkeypatch, keys_of(prefix, identity), src, tmp_path / "ref" / "a", **options)
    assert parts(prefix.parent) == parts(tmp_path / "ref")
    stc.unpack(prefix, tmp_path / "restored", identities=[identity])
    assert snapshot(tmp_path / "restored" / src.relative_to("/")) == snapshot(src)
    assert stc.verify(prefix, identities=[identity], deep=True).ok


def interrupted(tmp_path: Path, monkeypatch, identity, **extra) -> tuple[Path, Path, dict]:
    src = make_source(tmp_path)
    options = {"compression": "gzip", "recipients": [identity.recipient], **SMALL, **extra}
    prefix = tmp_path / "out" / "a"
    pack_until(monkeypatch, [src], prefix, 6, **options)
    return src, prefix, options


def test_a_source_changed_before_the_resume_point_is_refused(tmp_path, monkeypatch, identity):
    src, prefix, options = interrupted(tmp_path, monkeypatch, identity)
    first = src / "a_first"
    before = first.stat()
    first.write_bytes(b"FIRST FILE\n" * 40)
    os.utime(first, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(stc.SourceChangedError, match="interrupted pack: up to its resume point"):
        stc.pack([src], prefix, resume=True, **options)
    assert (prefix.parent / "a.resume").exists()  # still resumable once the file is back
    assert stc.pack([src], prefix, force=True, **options).manifest.complete
    assert not (prefix.parent / "a.resume").exists()


def test_remade_bytes_that_differ_from_the_stored_ones_are_refused(
    tmp_path, monkeypatch, identity
) -> None:
    """A state whose nonce is not the one the stored chunks were sealed with: every byte
    made again differs, and sealing on would reuse counters for other plaintext. (The same
    interrupted pack, copied before the edit, resumes.)"""
    src, prefix, options = interrupted(tmp_path, monkeypatch, identity)
    shutil.copytree(prefix.parent, tmp_path / "copy")
    state = prefix.parent / "a.resume"
    document = json.loads(state.read_text())
    document["nonce"] = base64.b64encode(os.urandom(16)).decode()
    state.write_text(json.dumps(document))
    with pytest.raises(stc.SourceChangedError, match="sealed them"):  # past the checkpoint
        stc.pack([src], prefix, resume=True, **options)
    # With nothing past the checkpoint, and a state of the version before the record: still
    # refused (the age chunk that holds the checkpoint's end is read back from its chunks).
    del document["written"]
    state.write_text(json.dumps(document))
    listed = len(document["checkpoint"]["chunks"])
    for path in [*prefix.parent.glob("a.part*"), *prefix.parent.glob(".a.part*.tmp")]:
        if path.name.startswith(".") or int(path.name.rsplit("part", 1)[1]) >= listed:
            path.unlink()
    with pytest.raises(stc.SourceChangedError, match=r"made again|sealed them"):
        stc.pack([src], prefix, resume=True, **options)
    assert stc.pack([src], tmp_path / "copy" / "a", resume=True, **options).resumed_chunks


def test_a_resume_takes_the_same_recipients_only(tmp_path, monkeypatch, identity) -> None:
    src, prefix, options = interrupted(tmp_path, monkeypatch, identity)
    other = {**options, "recipients": [X25519Identity.generate().recipient]}
    with pytest.raises(stc.UsageError, match="other recipients"):
        stc.pack([src], prefix, resume=True, **other)
    with pytest.raises(stc.UsageError, match="is encrypted"):
        stc.pack([src], prefix, resume=True, **{**options, "recipients": []})
    plain = tmp_path / "plain" / "a"
    pack_until(monkeypatch, [src], plain, 3, compression="gzip", **SMALL)
    with pytest.raises(stc.UsageError, match="not encrypted"):
        stc.pack([src], plain, resume=True, **options)


def test_a_passphrase_pack_resumes_with_its_passphrase(tmp_path, monkeypatch) -> None:
    src = make_source(tmp_path)
    options = {"compression": "zstd", **SMALL}
    prefix = tmp_path / "out" / "a"
    pack_until(monkeypatch, [src], prefix, 4, passphrase="correct horse battery", **options)
    assert "correct horse" not in (prefix.parent / "a.resume").read_text()
    with pytest.raises(stc.UsageError, match="passphrase is not"):
        stc.pack([src], prefix, resume=True, passphrase="wrong", **options)
    stc.pack([src], prefix, resume=True, passphrase="correct horse battery", **options)
    stc.unpack(prefix, tmp_path / "restored", passphrase="correct horse battery")
    assert snapshot(tmp_path / "restored" / src.relative_to("/")) == snapshot(src)


def test_info_prints_the_command_that_resumes_it(tmp_path, monkeypatch, identity, capsys):
    prefix = interrupted(tmp_path, monkeypatch, identity)[1]
    assert main(["info", str(prefix)]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    command = lines["resume"].strip()
    assert f"-r {identity.recipient}" in command and command.endswith("--resume")
    assert main([*command.split()[1:], "-q"]) == 0
    assert stc.verify(prefix, identities=[identity], deep=True).ok


@pytest.mark.timeout(240)
def test_sigkill_at_random_points_then_resume_restores_with_age(tmp_path, monkeypatch, identity):
    make_source(tmp_path, files=150)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "key.txt").write_text(f"{identity}\n")
    options = ["-c", "zstd", "--chunk-size", "16K", "--block-size", "8K", "-j", "1", "-q"]
    options += ["-r", str(identity.recipient)]
    rng = random.Random("sealed kills")
    killed = 0
    for attempt in range(3):
        out = tmp_path / f"out{attempt}"
        pack = stc_command("pack", "src", "-o", str(out / "a"), *options)
        target = rng.randint(1, 30)
        killed += kill_when(pack, out, target, rng.choice([0, 0.001, 0.01]))
        killed += kill_when([*pack, "--resume"], out, rng.randint(target, 40), 0.002)
        done = subprocess.run([*pack, "--resume"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert not (out / "a.resume").exists()
        restored = tmp_path / f"restored{attempt}"
        restored.mkdir()
        age = f"{tool('age')} -d -i key.txt"
        recipe = f"set -o pipefail; cat {out}/a.part* | {age} | tar --zstd -xf - -C {restored}"
        subprocess.run(["bash", "-c", recipe], check=True, cwd=tmp_path)
        assert snapshot(restored / "src") == snapshot(tmp_path / "src")
    assert killed >= 2, "the kills came too late to interrupt anything"


def test_resume_points_are_made_about_once_a_chunk_not_once_a_block(
    tmp_path, monkeypatch, identity
) -> None:
    """A resume point holds the encoder's state, which grows with the blocks (zstd's seek
    table): made at every block, an encrypted pack would cost quadratic time."""
    src = make_source(tmp_path, files=150)
    made = []
    real = pack_module.ResumePoint
    monkeypatch.setattr(pack_module, "ResumePoint", lambda *a: made.append(a) or real(*a))
    result = stc.pack(
        [src],
        tmp_path / "a",
        compression="zstd",
        chunk_size=64 * 1024,
        block_size=4096,
        recipients=[identity.recipient],
    )
    chunks = result.manifest.total_chunks
    blocks = stc.verify(tmp_path / "a", identities=[identity], deep=True).blocks_checked
    assert chunks >= 4 and blocks > 4 * chunks
    assert len(made) <= 2 * chunks + 3, (len(made), chunks, blocks)


def test_every_kill_point_of_a_small_archive_resumes_to_the_same_bytes(
    tmp_path, monkeypatch, identity
) -> None:
    """Kill points in every chunk, the last ones too (whose resume points may lie in the final
    age chunk, sealed with the final flag), before and after the chunk takes its name."""
    src = make_source(tmp_path, files=30)
    options = {"compression": "none", "recipients": [identity.recipient], **SMALL}
    total = stc.pack([src], tmp_path / "probe" / "a", **options).manifest.total_chunks
    assert total >= 6
    for stop_at in range(total):
        for renamed in (False, True):
            out = tmp_path / f"out-{stop_at}-{renamed}"
            pack_until(monkeypatch, [src], out / "a", stop_at, renamed=renamed, **options)
            stc.pack([src], out / "a", resume=True, **options)
            keys = keys_of(out / "a", identity)
            reference = tmp_path / f"ref-{stop_at}-{renamed}"
            packed_with_keys(monkeypatch, keys, src, reference / "a", **options)
            assert parts(out) == parts(reference), (stop_at, renamed)
            assert not (out / "a.resume").exists()


def sealed_tail_member(src: Path, prefix: Path, options: dict) -> Path:
    """A file packed after the resumed block whose bytes the interrupted pack (codec none:
    the tar stream itself) had already sealed and written past its checkpoint."""
    state = json.loads((prefix.parent / "a.resume").read_text())["checkpoint"]
    listed = sum(chunk["size"] for chunk in state["chunks"])  # made again, then dropped
    written = [*prefix.parent.glob("a.part*"), *prefix.parent.glob(".a.part*.tmp")]
    assert len(written) > len(state["chunks"]), "the test needs chunks past the checkpoint"
    # A tar offset is before its sealed place (less the header, nonce and tags before it).
    end = sum(path.stat().st_size for path in written) * 64 // 65 - 1000
    plain = {**options, "recipients": []}
    whole = stc.pack([src], prefix.parent.parent / "plain" / "a", **plain)
    stream = b"".join(Path(chunk.path).read_bytes() for chunk in whole.chunks)
    with tarfile.open(fileobj=io.BytesIO(stream)) as archive:
        for member in archive:
            if member.isfile() and member.size and listed < member.offset_data < end:
                return Path("/") / member.name
    raise AssertionError("no file starts in the sealed tail")


def test_a_source_changed_in_bytes_already_sealed_is_refused(tmp_path, monkeypatch, identity):
    src = make_source(tmp_path)
    options = {"compression": "none", "recipients": [identity.recipient], **SMALL}
    prefix = tmp_path / "out" / "a"
    pack_until(monkeypatch, [src], prefix, 9, renamed=True, **options)
    victim = sealed_tail_member(src, prefix, options)
    before, stamp = victim.read_bytes(), victim.stat()
    victim.write_bytes(bytes(b ^ 0x55 for b in before))  # same size and mtime
    os.utime(victim, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    with pytest.raises(stc.SourceChangedError, match="sealed them"):
        stc.pack([src], prefix, resume=True, **options)
    # Those chunks gone (as a refused resume removes the one in progress): still refused,
    # for what they held may have been seen; the state recorded them.
    listed = len(json.loads((prefix.parent / "a.resume").read_text())["checkpoint"]["chunks"])
    for path in [*prefix.parent.glob("a.part*"), *prefix.parent.glob(".a.part*.tmp")]:
        if path.name.startswith(".") or int(path.name.rsplit("part", 1)[1]) >= listed:
            path.unlink()
    with pytest.raises(stc.SourceChangedError, match="sealed them"):
        stc.pack([src], prefix, resume=True, **options)
    victim.write_bytes(before)
    os.utime(victim, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    stc.pack([src], prefix, resume=True, **options)
    packed_with_keys(monkeypatch, keys_of(prefix, identity), src, tmp_path / "ref" / "a", **options)
    assert parts(prefix.parent) == parts(tmp_path / "ref")


def test_a_source_changed_past_what_was_sealed_is_packed_as_it_is_now(
    tmp_path, monkeypatch, identity
) -> None:
    src = make_source(tmp_path)
    options = {"compression": "gzip", "recipients": [identity.recipient], **SMALL}
    prefix = tmp_path / "out" / "a"
    pack_until(monkeypatch, [src], prefix, 3, **options)
    (src / "z_last").write_bytes(b"changed after the interrupted pack\n")
    stc.pack([src], prefix, resume=True, **options)
    stc.unpack(prefix, tmp_path / "restored", identities=[identity])
    assert snapshot(tmp_path / "restored" / src.relative_to("/")) == snapshot(src)


def test_the_state_is_removed_with_the_pack_it_belongs_to_and_no_other_file(
    tmp_path, monkeypatch, identity
) -> None:
    src, prefix, options = interrupted(tmp_path, monkeypatch, identity)
    state = prefix.parent / "a.resume"
    kept = state.read_bytes()
    stc.pack([src], prefix, resume=True, **options)
    state.write_bytes(kept)  # as if the pack died between its manifest and the removal
    assert stc.pack([src], prefix, resume=True, **options).manifest.complete
    assert not state.exists()
    theirs = tmp_path / "mine" / "a.resume"
    theirs.parent.mkdir()
    theirs.write_text("my notes\n")
    with pytest.raises(stc.OutputError, match="not stc's"):
        stc.pack([src], tmp_path / "mine" / "a", **options)  # its state would go there
    stc.pack([src], tmp_path / "mine" / "a", compression="gzip", force=True, **SMALL)
    assert theirs.read_text() == "my notes\n"


def test_a_pack_stopped_by_an_error_leaves_what_it_sealed_for_the_resume_to_check(
    tmp_path, monkeypatch, identity
) -> None:
    """Ctrl-C or a failure (not a kill): the pack cleans up, but keeps the chunk it was
    writing, which the resume records before it removes it."""
    src = make_source(tmp_path)
    options = {"compression": "none", "recipients": [identity.recipient], **SMALL}
    prefix = tmp_path / "out" / "a"
    finish = LocalChunkSink.finish_chunk

    def interrupted_finish(self: LocalChunkSink, info: stc.ChunkInfo) -> stc.ChunkInfo:
        if info.index == 9:
            raise KeyboardInterrupt
        return finish(self, info)

    with monkeypatch.context() as patch:
        patch.setattr(LocalChunkSink, "finish_chunk", interrupted_finish)
        with pytest.raises(KeyboardInterrupt):
            stc.pack([src], prefix, **options)
    assert (prefix.parent / ".a.part9.tmp").exists()
    victim = sealed_tail_member(src, prefix, options)
    before, stamp = victim.read_bytes(), victim.stat()
    victim.write_bytes(bytes(b ^ 0x55 for b in before))
    os.utime(victim, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    with pytest.raises(stc.SourceChangedError, match="sealed them"):
        stc.pack([src], prefix, resume=True, **options)
    victim.write_bytes(before)
    os.utime(victim, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    stc.pack([src], prefix, resume=True, **options)
    assert not list(prefix.parent.glob(".a.part*.tmp"))
