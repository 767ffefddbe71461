"""Chunks in a local directory: ``DIR/NAME.part0000``… beside ``DIR/NAME.manifest.json``."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import replace

from ..core.manifest import Manifest, is_bare_file_name
from ..errors import ManifestError, MissingChunkError, OutputError, UsageError
from ..models import ChunkInfo

READ_SIZE = 1 << 20  # bytes per read: large enough that syscalls cost nothing


def split_prefix(prefix: str) -> tuple[str, str]:
    """``out/backup`` → (``out``, ``backup``); the name part must be a bare file name."""
    directory, name = os.path.split(prefix)
    if not is_bare_file_name(name):
        raise UsageError(f"the prefix {prefix!r} must end in a file name, like out/backup")
    return directory or ".", name


def manifest_path(prefix: str) -> str:
    return prefix + ".manifest.json"


def sha256sum_path(prefix: str) -> str:
    return prefix + ".sha256"


def part_files(directory: str, name: str) -> list[str]:
    """Names of ``NAME.part<digits>`` files in ``directory``, in chunk order."""
    pattern = re.compile(re.escape(name) + r"\.part(\d+)")
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), e) for e in entries if (m := pattern.fullmatch(e))]
    return [entry for _, entry in sorted(found)]


def archive_file_matcher(prefix: str) -> Callable[[str], bool]:
    """True for the archive's own files (chunks, manifest, their temp names), so packing a
    folder that holds the output never packs the archive into itself."""
    directory, name = split_prefix(prefix)
    pattern = re.compile(rf"\.?{re.escape(name)}\.(part\d+|manifest\.json|sha256)(\.\d+)?(\.tmp)?")

    def matches(path: str) -> bool:
        if not pattern.fullmatch(os.path.basename(path)):
            return False
        try:
            return os.path.samefile(os.path.dirname(path) or ".", directory)
        except OSError:
            return False

    return matches


def atomic_write(path: str, data: bytes) -> None:
    """Temp file, fsync, rename, fsync the folder: a reader sees the old file or the new one."""
    directory = os.path.dirname(path) or "."
    temp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        _fsync_directory(directory)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise OutputError(f"cannot write {path}: {exc}") from exc


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalChunkSink:
    """Writes chunks as they are cut; each one appears under its real name only when complete.

    Replacing an archive (``force``) keeps the old one whole until the new one is: new chunks
    wait under temporary names and take their real names together, just before the manifest.
    """

    def __init__(self, prefix: str, *, force: bool = False) -> None:
        self.directory, self.name = split_prefix(prefix)
        self.prefix = prefix
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {self.directory}: {exc}") from exc
        self._old_parts = part_files(self.directory, self.name)
        replacing = bool(self._old_parts) or os.path.exists(manifest_path(prefix))
        if replacing and not force:
            raise OutputError(
                f"{prefix} already has an archive; choose another prefix, "
                "or replace it (force=True; --force on the command line)"
            )
        self._deferred = replacing
        self._handle: tuple[int, str] | None = None
        self._waiting: list[tuple[str, str]] = []  # (temp, final) while replacing

    def write(self, index: int, data: bytes | memoryview) -> None:
        name = f"{self.name}.part{index}"
        if self._handle is None:
            temp = os.path.join(self.directory, f".{name}.tmp")
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)  # a leftover of an interrupted run, or a planted link
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                raise OutputError(f"cannot create chunk {name}: {exc}") from exc
            self._handle = (fd, temp)
        fd = self._handle[0]
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            raise OutputError(f"cannot write chunk {name}: {exc}") from exc

    def finish_chunk(self, info: ChunkInfo) -> ChunkInfo:
        """fsync the chunk and give it its name (when replacing: later); returns it with path."""
        if self._handle is None:
            self.write(info.index, b"")
        assert self._handle is not None
        fd, temp = self._handle
        self._handle = None
        final = os.path.join(self.directory, info.name)
        try:
            os.fsync(fd)
            os.close(fd)
            if self._deferred:
                self._waiting.append((temp, final))
            else:
                os.replace(temp, final)
        except OSError as exc:
            raise OutputError(f"cannot finish chunk {info.name}: {exc}") from exc
        return replace(info, path=final)

    def write_manifest(self, manifest: Manifest) -> None:
        try:
            if self._deferred:
                self._swap_in(manifest)
            _fsync_directory(self.directory)
        except OSError as exc:
            raise OutputError(f"cannot put the chunks of {self.prefix} in place: {exc}") from exc
        atomic_write(sha256sum_path(self.prefix), manifest.sha256sum_text().encode())
        atomic_write(manifest_path(self.prefix), manifest.to_json().encode())

    def abort(self) -> None:
        """Remove what is not whole: the chunk in progress, and when replacing, the new chunks
        still waiting (the old archive stays as it was)."""
        waiting, self._waiting = self._waiting, []
        temps = [temp for temp, _ in waiting]
        if self._handle is not None:
            fd, temp = self._handle
            self._handle = None
            os.close(fd)
            temps.append(temp)
        for temp in temps:
            with contextlib.suppress(OSError):
                os.unlink(temp)

    def _swap_in(self, manifest: Manifest) -> None:
        """Old manifest out first, so no moment shows it beside chunks it does not describe."""
        for old in (manifest_path(self.prefix), sha256sum_path(self.prefix)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(old)
        for temp, final in self._waiting:
            os.replace(temp, final)
        self._waiting = []
        new = {chunk.name for chunk in manifest.chunks}
        for stale in self._old_parts:
            if stale not in new:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.directory, stale))


class LocalChunkSource:
    """Reads the chunks of a prefix: the manifest's list, or ``NAME.part*`` without one."""

    def __init__(self, prefix: str) -> None:
        self.directory, self.name = split_prefix(prefix)
        self.prefix = prefix
        self.manifest = read_manifest_if_present(prefix)
        if self.manifest is not None:
            self.chunks: list[ChunkInfo] = list(self.manifest.chunks)
        else:
            names = part_files(self.directory, self.name)
            if not names:
                raise MissingChunkError(
                    0,
                    f"{prefix} (neither {self.name}.manifest.json nor {self.name}.part* "
                    f"exists in {self.directory})",
                    "check the prefix",
                )
            self.chunks = [
                ChunkInfo(index=i, name=n, size=-1, checksum="") for i, n in enumerate(names)
            ]

    def path(self, chunk: ChunkInfo) -> str:
        return os.path.join(self.directory, chunk.name)

    def read(self, chunk: ChunkInfo) -> Iterator[bytes]:
        """The chunk's bytes in pieces of READ_SIZE; a missing file is a MissingChunkError."""
        try:
            handle = open(self.path(chunk), "rb", buffering=0)  # noqa: SIM115
        except FileNotFoundError:
            raise MissingChunkError(chunk.index, self.directory) from None
        except OSError as exc:
            raise MissingChunkError(chunk.index, f"{self.directory} ({exc})") from exc
        with handle:
            while piece := handle.read(READ_SIZE):
                yield piece


def read_manifest_if_present(prefix: str) -> Manifest | None:
    path = manifest_path(prefix)
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from exc
    return Manifest.from_json(text, source=path)
