"""Permission bits as ``tar`` restores them: stored bits less the umask, or as stored with
``-p``; special bits never. The output directory keeps its own mode and owner."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor import decompress_from_chunks
from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.fs.writer import current_umask

MODES = {"open": 0o777, "open/shared": 0o666, "private": 0o700, "private/key": 0o600}
MODES |= {"tool": 0o4755, "script": 0o775}


@pytest.fixture
def prefix(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for name, mode in MODES.items():
        path = src / name
        if name in ("open", "private"):
            path.mkdir(parents=True)
        else:
            path.write_bytes(b"data\n")
        path.chmod(mode)
    archive = tmp_path / "arc" / "p"
    stc.pack(src, archive)
    return archive


def restored_modes(out: Path) -> dict[str, int]:
    root = next(out.rglob("src"))
    return {name: stat.S_IMODE((root / name).lstat().st_mode) for name in MODES}


def test_the_umask_applies_by_default(prefix: Path, tmp_path: Path) -> None:
    stc.unpack(prefix, tmp_path / "out")
    assert restored_modes(tmp_path / "out") == {
        "open": 0o755,
        "open/shared": 0o644,
        "private": 0o700,
        "private/key": 0o600,
        "tool": 0o755,
        "script": 0o755,
    }


def test_another_umask(prefix: Path, tmp_path: Path) -> None:
    os.umask(0o027)  # the autouse fixture restores it
    assert current_umask() == 0o027
    stc.unpack(prefix, tmp_path / "out")
    modes = restored_modes(tmp_path / "out")
    assert modes["open"] == 0o750 and modes["open/shared"] == 0o640 and modes["script"] == 0o750


def test_same_permissions_keeps_the_stored_bits_but_not_special_ones(
    prefix: Path, tmp_path: Path
) -> None:
    expected = {name: mode & 0o777 for name, mode in MODES.items()}
    stc.unpack(prefix, tmp_path / "api", same_permissions=True)
    assert restored_modes(tmp_path / "api") == expected
    assert main(["unpack", str(prefix), "-C", str(tmp_path / "cli"), "-p", "-q"]) == 0
    assert restored_modes(tmp_path / "cli") == expected
    asyncio.run(decompress_from_chunks(prefix, tmp_path / "aio", same_permissions=True))
    assert restored_modes(tmp_path / "aio") == expected


def test_the_umask_is_read_without_being_changed() -> None:
    for mask in (0o022, 0o077, 0o002):
        os.umask(mask)
        assert current_umask() == mask
        assert os.umask(mask) == mask  # still what was set


def dot_archive(uid: int) -> bytes:
    """What ``tar -C dir .`` writes: a ``./`` member first, here world-writable and foreign."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, kind, mode in ((".", tarfile.DIRTYPE, 0o777), ("./f", tarfile.REGTYPE, 0o644)):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, uid, 1000
            info.size = 2 if kind == tarfile.REGTYPE else 0
            archive.addfile(info, io.BytesIO(b"f\n") if kind == tarfile.REGTYPE else None)
    return gzip.compress(buffer.getvalue())


def test_the_output_directory_keeps_its_mode_times_and_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    before = out.stat()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(dot_archive(4242))))
    args = ["unpack", "-", "-C", str(out), "-q", "-p"]
    assert main([*args, "--same-owner"] if os.geteuid() == 0 else args) == 0
    after = out.stat()
    assert stat.S_IMODE(after.st_mode) == 0o700
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert after.st_mtime_ns >= before.st_mtime_ns  # now, not the archive's 1970 time
    if os.geteuid() == 0:
        assert (out / "f").stat().st_uid == 4242  # owners restored where they belong
