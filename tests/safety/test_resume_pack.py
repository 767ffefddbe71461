"""Resuming an interrupted pack: same bytes as an uninterrupted run, or a clear refusal."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor.errors import (
    ArchiveBusyError,
    ChecksumMismatchError,
    ManifestError,
    OutputError,
    SourceChangedError,
    UsageError,
)
from streaming_tar_compressor.storage.local import LocalChunkSink, PrefixLock, lock_path

CODECS = ["gzip", "zstd", "xz", "lz4", "bzip2", "none"]
SMALL = {"chunk_size": 16 * 1024, "block_size": 8 * 1024}


class Interrupted(BaseException):
    """Stands for a kill: raised from inside the pack, it is not an error the pack handles."""


def make_source(root: Path, seed: int = 7, files: int = 60) -> Path:
    """Sorted names: ``a_first`` is packed first, ``z_last`` last; compressible and random."""
    rng = random.Random(seed)
    src = root / "src"
    (src / "m").mkdir(parents=True)
    (src / "a_first").write_bytes(b"first file\n" * 40)
    for i in range(files):
        text = " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(900))
        data = text.encode() if i % 3 else rng.randbytes(rng.randint(0, 9000))
        (src / "m" / f"f{i:03d}").write_bytes(data)
    os.link(src / "m" / "f001", src / "m" / "hardlink")
    os.symlink("f002", src / "m" / "symlink")
    (src / "z_last").write_bytes(b"last file\n" * 40)
    return src


def archive_files(directory: Path, name: str = "a") -> dict[str, object]:
    """Every file of the archive by name; the manifest without its creation time."""
    found: dict[str, object] = {}
    for path in sorted(directory.iterdir()):
        if path.name.endswith(".manifest.json"):
            document = json.loads(path.read_text())
            document.pop("created")
            found[path.name] = document
        else:
            found[path.name] = path.read_bytes()
    return found


def interrupt_after(monkeypatch: pytest.MonkeyPatch, chunks: int, *, renamed: bool = False) -> None:
    """The pack dies as chunk ``chunks`` is finished (before its rename, leaving its temp file,
    or just after it, before any checkpoint names it), as a kill would."""
    finish = LocalChunkSink.finish_chunk

    def dying_finish(self: LocalChunkSink, info: stc.ChunkInfo) -> stc.ChunkInfo:
        if info.index == chunks and not renamed:
            raise Interrupted
        done = finish(self, info)
        if info.index == chunks:
            raise Interrupted
        return done

    monkeypatch.setattr(LocalChunkSink, "finish_chunk", dying_finish)
    monkeypatch.setattr(LocalChunkSink, "abort", lambda self: None)


def pack_until(
    monkeypatch: pytest.MonkeyPatch,
    sources: list[Path] | list[str],
    prefix: Path,
    stop_at: int,
    *,
    renamed: bool = False,
    **options: Any,
) -> None:
    """A pack that dies at chunk ``stop_at`` (see interrupt_after)."""
    with monkeypatch.context() as patch:
        interrupt_after(patch, stop_at, renamed=renamed)
        with pytest.raises(Interrupted):
            stc.pack(sources, prefix, **options)


def reference(tmp_path: Path, src: Path, codec: str, **options: int) -> dict[str, object]:
    stc.pack([src], tmp_path / "ref" / "a", compression=codec, **options)  # type: ignore[arg-type]
    return archive_files(tmp_path / "ref")


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("where", ["first", "second", "middle", "last"])
def test_resume_gives_the_bytes_of_an_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str, where: str
) -> None:
    src = make_source(tmp_path)
    expected = reference(tmp_path, src, codec, **SMALL)
    total = sum(".part" in name for name in expected)
    stop_at = {"first": 0, "second": 1, "middle": total // 2, "last": total - 1}[where]
    pack_until(monkeypatch, [src], tmp_path / "out" / "a", stop_at, compression=codec, **SMALL)
    checkpoint = tmp_path / "out" / "a.manifest.json"
    kept = 0  # dying on the first chunk leaves no checkpoint: the resume starts over
    if stop_at:
        manifest = json.loads(checkpoint.read_text())
        assert manifest["complete"] is False
        kept = manifest["total_chunks"]
        assert 0 < kept <= stop_at
    else:
        assert not checkpoint.exists()
    assert list((tmp_path / "out").glob(".a.part*.tmp")), "the dying pack left its temp chunk"
    result = stc.pack([src], tmp_path / "out" / "a", compression=codec, resume=True, **SMALL)
    assert result.resumed_chunks == kept
    assert archive_files(tmp_path / "out") == expected
    assert not (tmp_path / "out" / ".a.lock").exists()


def test_a_resumed_archive_unpacks_and_a_second_resume_is_a_no_op(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_source(tmp_path)
    pack_until(monkeypatch, [src], tmp_path / "out" / "a", 3, compression="zstd", **SMALL)
    stc.pack([src], tmp_path / "out" / "a", compression="zstd", resume=True, **SMALL)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    again = stc.pack([src], tmp_path / "out" / "a", compression="zstd", resume=True, **SMALL)
    assert again.resumed_chunks == again.manifest.total_chunks
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()} == stamps
    stc.unpack(tmp_path / "out" / "a", tmp_path / "restored")
    restored = tmp_path / "restored" / str(src).lstrip("/")
    assert (restored / "m" / "f010").read_bytes() == (src / "m" / "f010").read_bytes()


def interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, src: Path, at: int = 6) -> Path:
    prefix = tmp_path / "out" / "a"
    pack_until(monkeypatch, [src], prefix, at, compression="gzip", **SMALL)
    return prefix


def test_a_file_changed_before_the_resume_point_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_source(tmp_path)
    prefix = interrupted(tmp_path, monkeypatch, src)
    first = src / "a_first"
    before = first.stat()
    # Same size, same mtime: only the ctime (and the bytes) tell it changed.
    first.write_bytes(b"FIRST FILE\n" * 40)
    os.utime(first, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(SourceChangedError, match="changed since the interrupted pack"):
        stc.pack([src], prefix, compression="gzip", resume=True, **SMALL)
    assert json.loads(Path(f"{prefix}.manifest.json").read_text())["complete"] is False


def test_a_file_changed_after_the_resume_point_is_packed_as_it_is_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_source(tmp_path)
    prefix = interrupted(tmp_path, monkeypatch, src, at=3)
    (src / "z_last").write_bytes(b"changed after the resume point\n")
    stc.pack([src], prefix, compression="gzip", resume=True, **SMALL)
    assert archive_files(prefix.parent) == reference(tmp_path, src, "gzip", **SMALL)


def test_resume_needs_the_same_sources_and_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_source(tmp_path)
    prefix = interrupted(tmp_path, monkeypatch, src)
    with pytest.raises(UsageError, match="chunk size 16384, not 32768"):
        stc.pack([src], prefix, compression="gzip", resume=True, chunk_size=32768, block_size=8192)
    with pytest.raises(UsageError, match="compression gzip, not zstd"):
        stc.pack([src], prefix, compression="zstd", resume=True, **SMALL)
    with pytest.raises(UsageError, match="same ones"):
        stc.pack([src / "m"], prefix, compression="gzip", resume=True, **SMALL)
    with pytest.raises(UsageError, match="choose one"):
        stc.pack([src], prefix, compression="gzip", resume=True, force=True, **SMALL)


def test_a_damaged_chunk_stops_the_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_source(tmp_path)
    prefix = interrupted(tmp_path, monkeypatch, src)
    part = prefix.parent / "a.part0002"
    data = bytearray(part.read_bytes())
    data[100] ^= 1
    part.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match=r"a\.part0002"):
        stc.pack([src], prefix, compression="gzip", resume=True, **SMALL)


def test_an_interrupted_pack_is_neither_unpacked_nor_silently_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_source(tmp_path)
    prefix = interrupted(tmp_path, monkeypatch, src)
    with pytest.raises(ManifestError, match="interrupted pack"):
        stc.unpack(prefix, tmp_path / "restored")
    with pytest.raises(ManifestError, match="interrupted pack"):
        stc.verify(prefix)
    with pytest.raises(OutputError, match="--resume"):
        stc.pack([src], prefix, compression="gzip", **SMALL)
    stc.pack([src], prefix, compression="gzip", force=True, **SMALL)
    assert archive_files(prefix.parent) == reference(tmp_path, src, "gzip", **SMALL)


def test_a_second_pack_to_a_prefix_in_use_fails_at_once(tmp_path: Path) -> None:
    src = make_source(tmp_path, files=3)
    prefix = tmp_path / "out" / "a"
    with PrefixLock(str(prefix)), pytest.raises(ArchiveBusyError, match="another pack"):
        stc.pack([src], prefix)
    assert not any(p.name.startswith("a.") for p in (tmp_path / "out").iterdir())
    stc.pack([src], prefix)  # the lock is gone with its holder
    assert not Path(lock_path(str(prefix))).exists()


def test_the_cli_reports_a_busy_prefix_with_exit_code_10(tmp_path: Path) -> None:
    src = make_source(tmp_path, files=3)
    prefix = tmp_path / "out" / "a"
    with PrefixLock(str(prefix)):
        done = subprocess.run(
            [sys.executable, "-m", "streaming_tar_compressor", "pack", str(src), "-o", str(prefix)],
            capture_output=True,
            text=True,
        )
    assert done.returncode == 10
    assert "another pack is writing" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def stc_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "streaming_tar_compressor", *args]


def parts_done(directory: Path) -> int:
    try:
        return sum(1 for name in os.listdir(directory) if ".part" in name and name[0] != ".")
    except FileNotFoundError:
        return 0


def kill_when(command: list[str], directory: Path, parts: int, delay: float) -> bool:
    """Run ``command``; SIGKILL it once ``parts`` chunk files exist, ``delay`` s later. True if
    it was killed (False: it finished first)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None and parts_done(directory) < parts:
            time.sleep(0.0005)
        time.sleep(delay)
        if process.poll() is not None:
            return False
        process.send_signal(signal.SIGKILL)
        process.wait()
        return True
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("codec", CODECS)
def test_sigkill_at_random_points_then_resume_is_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    make_source(tmp_path, files=150)
    monkeypatch.chdir(tmp_path)
    options = ["-c", codec, "--chunk-size", "16K", "--block-size", "8K", "-j", "1", "-q"]
    stc.pack(["src"], tmp_path / "ref" / "a", compression=codec, workers=1, **SMALL)
    expected = archive_files(tmp_path / "ref")
    total = len([name for name in expected if ".part" in name])
    rng = random.Random(codec)
    killed = 0
    for attempt in range(5):
        out = tmp_path / f"out{attempt}"
        pack = stc_command("pack", "src", "-o", str(out / "a"), *options)
        target = rng.randint(0, total - 1)
        killed += kill_when(pack, out, target, rng.choice([0, 0.001, 0.01]))
        # The resumed run may be killed too, then resumed again.
        killed += kill_when([*pack, "--resume"], out, rng.randint(target, total), 0.002)
        done = subprocess.run([*pack, "--resume"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert archive_files(out) == expected, f"kill point {target} of {total} chunks"
        assert not [name for name in os.listdir(out) if name.endswith((".tmp", ".lock"))]
    print(f"{codec}: {killed} kills at chunk points out of {total} chunks, all resumed identically")
    assert killed >= 3, "the kills came too late to interrupt anything"


def test_relative_sources_resume_only_from_the_same_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_source(tmp_path)
    monkeypatch.chdir(tmp_path)
    prefix = tmp_path / "out" / "a"
    pack_until(monkeypatch, ["src"], prefix, 4, compression="gzip", **SMALL)
    (tmp_path / "elsewhere" / "src").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="resume it from there"):
        stc.pack(["src"], prefix, compression="gzip", resume=True, **SMALL)
    monkeypatch.chdir(tmp_path)
    # The same sources spelled another way make the same members: accepted.
    assert stc.pack(["./src/"], prefix, compression="gzip", resume=True, **SMALL).resumed_chunks
    stc.pack(["src"], tmp_path / "ref" / "a", compression="gzip", **SMALL)
    assert archive_files(prefix.parent) == archive_files(tmp_path / "ref")


TINY = {"chunk_size": 2000, "block_size": 16384}  # many chunks end inside each block


def noise_source(root: Path) -> Path:
    """Incompressible files, so chunks end inside block 0 too, after the codec's header."""
    rng = random.Random(3)
    src = root / "src"
    src.mkdir()
    for i in range(12):
        (src / f"f{i:02d}").write_bytes(rng.randbytes(rng.randint(0, 9000)))
    (src / ("long" * 40)).write_bytes(rng.randbytes(3000))  # a pax header
    return src


@pytest.mark.parametrize("codec", ["gzip", "xz", "zstd", "none"])
@pytest.mark.parametrize("renamed", [False, True])
def test_resume_where_chunks_are_smaller_than_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str, renamed: bool
) -> None:
    src = noise_source(tmp_path)
    expected = reference(tmp_path, src, codec, **TINY)
    total = sum(".part" in name for name in expected)
    for stop_at in sorted({1, 5, 9, total // 2, total - 2}):
        out = tmp_path / f"out{stop_at}"
        pack_until(
            monkeypatch, [src], out / "a", stop_at, renamed=renamed, compression=codec, **TINY
        )
        stc.pack([src], out / "a", compression=codec, resume=True, **TINY)
        assert archive_files(out) == expected, f"interrupted at chunk {stop_at} of {total}"


def test_a_change_inside_the_resumed_block_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resumed block is made again: a file in it, after its start, must be unchanged too."""
    src = noise_source(tmp_path)
    prefix = tmp_path / "out" / "a"
    pack_until(monkeypatch, [src], prefix, 12, compression="none", **TINY)
    resume = json.loads(Path(f"{prefix}.manifest.json").read_text())["resume"]
    start, end = resume["raw_offset"], resume["raw_offset"] + TINY["block_size"]
    whole = stc.pack([src], tmp_path / "ref" / "a", compression="none", **TINY)
    stream = b"".join(Path(chunk.path).read_bytes() for chunk in whole.chunks)
    with tarfile.open(fileobj=io.BytesIO(stream)) as archive:
        inside = [
            member
            for member in archive
            if start < member.offset < end and member.isfile() and member.size
        ]
    assert inside, "no file starts inside the resumed block"
    changed = src / Path(inside[0].name).name
    data = changed.read_bytes()
    changed.write_bytes(bytes(b ^ 0xFF for b in data))
    with pytest.raises(SourceChangedError):
        stc.pack([src], prefix, compression="none", resume=True, **TINY)


def test_chunks_past_the_resumed_end_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_source(tmp_path)
    prefix = tmp_path / "out" / "a"
    pack_until(monkeypatch, [src], prefix, 2, compression="none", **SMALL)
    planted = prefix.parent / "a.part0099"  # as left by chunks renamed after the checkpoint
    planted.write_bytes(b"old chunk")
    (src / "z_last").write_bytes(b"")
    stc.pack([src], prefix, compression="none", resume=True, **SMALL)
    assert not planted.exists()
    assert archive_files(prefix.parent) == reference(tmp_path, src, "none", **SMALL)
