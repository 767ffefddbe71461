"""Chunks in a local directory: ``DIR/NAME.part0000``… beside ``DIR/NAME.manifest.json``."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import replace
from itertools import accumulate

from ..core.manifest import Manifest, is_bare_file_name
from ..errors import (
    ArchiveBusyError,
    ChecksumMismatchError,
    ManifestError,
    MissingChunkError,
    OutputError,
    UsageError,
)
from ..fs.walk import NamesIn
from ..models import ChunkInfo
from .checked_reads import FETCH_ATTEMPTS, CheckedPieces, CheckedRun, block_units, prefetch_units

READ_SIZE = 1 << 20  # bytes per read: large enough that syscalls cost nothing
# A manifest lists ~40 bytes per block and ~150 per chunk: 256 MiB is millions of each.
MAX_MANIFEST_SIZE = 256 * 2**20


def split_prefix(prefix: str) -> tuple[str, str]:
    """``out/backup`` → (``out``, ``backup``); the name part must be a bare file name."""
    directory, name = os.path.split(prefix)
    if not is_bare_file_name(name):
        raise UsageError(f"the prefix {prefix!r} must end in a file name, like out/backup")
    return directory or ".", name


MANIFEST_SUFFIX = ".manifest.json"
INDEX_SUFFIX = ".index"


def manifest_path(prefix: str) -> str:
    return prefix + MANIFEST_SUFFIX


def sha256sum_path(prefix: str) -> str:
    return prefix + ".sha256"


def numbered_part(name: str, file_name: str) -> int | None:
    """3 for ``NAME.part0003``; None for any other name."""
    digits = file_name[len(name) + len(".part") :]
    if file_name.startswith(name + ".part") and digits.isascii() and digits.isdigit():
        return int(digits)
    return None


def part_files(directory: str, name: str) -> list[str]:
    """Names of ``NAME.part<digits>`` files in ``directory``, in chunk order."""
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = [(n, e) for e in entries if (n := numbered_part(name, e)) is not None]
    return [entry for _, entry in sorted(found)]


def archive_file_matcher(prefix: str) -> NamesIn:
    """True for the archive's own files (chunks, manifest, their temp names), so packing a
    folder that holds the output never packs the archive into itself."""
    directory, name = split_prefix(prefix)
    pattern = re.compile(
        rf"\.?{re.escape(name)}\.(part\d+|manifest\.json|sha256|index|lock|resume)(\.\d+)?(\.tmp)?"
    )

    def matches(path: str) -> bool:
        if not pattern.fullmatch(os.path.basename(path)):
            return False
        try:
            return os.path.samefile(os.path.dirname(path) or ".", directory)
        except OSError:
            return False

    return NamesIn(directory, (name + ".", "." + name + "."), matches)


def atomic_write(path: str, data: bytes, mode: int = 0o666) -> None:
    """Temp file, fsync, rename, fsync the folder: a reader sees the old file or the new one.
    ``mode`` as ``open`` takes it (the umask applies)."""
    _rename_into_place(_write_temp(path, data, mode), path)


def _write_temp(path: str, data: bytes, mode: int = 0o666) -> str:
    """``data`` synced to disk under a temp name beside ``path``; a failure leaves no temp."""
    temp = os.path.join(
        os.path.dirname(path) or ".", f".{os.path.basename(path)}.{os.getpid()}.tmp"
    )
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)  # a dead run's (of the same pid), which may have another mode
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with open(os.open(temp, flags, mode), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        _remove(temp)
        raise OutputError(f"cannot write {path}: {exc}") from exc
    return temp


def _rename_into_place(temp: str, path: str) -> None:
    try:
        os.replace(temp, path)
        _fsync_directory(os.path.dirname(path) or ".")
    except OSError as exc:
        _remove(temp)
        raise OutputError(f"cannot write {path}: {exc}") from exc


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_LOCK_FLAGS = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC  # flock needs no write


def lock_path(prefix: str) -> str:
    directory, name = split_prefix(prefix)
    return os.path.join(directory, f".{name}.lock")


class PrefixLock:
    """An exclusive ``flock`` on ``.NAME.lock`` beside the chunks while a pack writes them, so
    a second pack to the same prefix fails at once instead of interleaving chunks. The kernel
    drops the lock when its process dies (kill -9 too): a leftover file never blocks anyone.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.path = lock_path(prefix)
        self._fd: int | None = None

    def __enter__(self) -> PrefixLock:
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, exist_ok=True)
            while self._fd is None:
                fd = os.open(self.path, _LOCK_FLAGS, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise ArchiveBusyError(
                        f"another pack is writing to {self.prefix} (it holds {self.path}); "
                        "wait for it to end or choose another prefix"
                    ) from None
                # The holder before us may have removed the file between our open and flock.
                if _same_file(fd, self.path):
                    self._fd = fd
                else:
                    os.close(fd)
        except OSError as exc:
            raise OutputError(f"cannot lock {self.path}: {exc}") from exc
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(self._fd)
            self._fd = None


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def remove_stale_temps(directory: str, name: str) -> None:
    """Temp chunks and manifests a killed pack left; the caller holds the prefix's lock."""
    pattern = re.compile(
        rf"\.{re.escape(name)}\.(part\d+|manifest\.json|sha256|index|resume)(\.\d+)?\.tmp"
    )
    try:
        for entry in os.listdir(directory):
            if pattern.fullmatch(entry):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(directory, entry))
    except OSError as exc:
        raise OutputError(f"cannot clean up {directory}: {exc}") from exc


class IndexFile:
    """The member index being written, under a temp name beside the chunks until the
    manifest is; a failed write is an OutputError, as a chunk's is."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.temp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.tmp")
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temp)  # a leftover of an interrupted run, or a planted link
            self._fd = os.open(
                self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644
            )
        except OSError as exc:
            raise OutputError(f"cannot create {self.temp}: {exc}") from exc

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc}") from exc

    def sync(self) -> str:
        """Synced and closed: returns the temp name to rename into place."""
        fd, self._fd = self._fd, -1  # closed below whatever happens; discard() must not
        try:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            _remove(self.temp)
            raise OutputError(f"cannot write {self.path}: {exc}") from exc
        return self.temp

    def commit(self) -> None:
        """Synced, closed and renamed into place (``stc index``; a pack renames it itself)."""
        _rename_into_place(self.sync(), self.path)

    def discard(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        _remove(self.temp)


class LocalChunkSink:
    """Writes chunks as they are cut; each one appears under its real name only when complete.

    Replacing an archive (``force``) keeps the old one whole until the new one is: new chunks
    wait under temporary names and take their real names together, just before the manifest.
    """

    def __init__(self, prefix: str, *, force: bool = False, resume: bool = False) -> None:
        self.directory, self.name = split_prefix(prefix)
        self.prefix = prefix
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {self.directory}: {exc}") from exc
        self._remove_stale_temps()
        self._old_parts = part_files(self.directory, self.name)
        # Resuming continues the interrupted archive in place: its chunks are ours to rewrite.
        replacing = not resume and (bool(self._old_parts) or os.path.exists(manifest_path(prefix)))
        if replacing and not force:
            raise OutputError(
                f"{prefix} already has an archive; choose another prefix, "
                "or replace it (force=True; --force on the command line)"
            )
        self._deferred = replacing
        self._keep_partial = False
        self._index: IndexFile | None = None
        self._handle: tuple[int, str] | None = None
        self._waiting: list[tuple[str, str]] = []  # (temp, final) while replacing

    @property
    def writes_checkpoints(self) -> bool:
        """Not while replacing an archive: its manifest stays until the new one is whole."""
        return not self._deferred

    def open_index(self) -> IndexFile:
        self._index = IndexFile(self.prefix + INDEX_SUFFIX)
        return self._index

    def write(self, index: int, data: bytes | memoryview, name: str = "") -> None:
        """The next bytes of chunk ``index``, into a temporary file of its own (``name``, the
        final one, is taken at finish)."""
        if self._handle is None:
            temp = os.path.join(self.directory, f".{self.name}.part{index}.tmp")
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)  # a leftover of an interrupted run, or a planted link
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                raise OutputError(f"cannot create chunk {index} ({temp}): {exc}") from exc
            self._handle = (fd, temp)
        fd, temp = self._handle
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            raise OutputError(f"cannot write chunk {index} ({temp}): {exc}") from exc

    def finish_chunk(self, info: ChunkInfo) -> ChunkInfo:
        """fsync the chunk and give it its name (when replacing: later); returns it with path."""
        if self._handle is None:
            self.write(info.index, b"")
        assert self._handle is not None
        fd, temp = self._handle
        self._handle = None
        final = os.path.join(self.directory, info.name)
        try:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            if self._deferred:
                self._waiting.append((temp, final))
            else:
                os.replace(temp, final)
        except OSError as exc:
            _remove(temp)  # the handle is gone, so abort() would not find it
            raise OutputError(f"cannot finish chunk {info.name}: {exc}") from exc
        return replace(info, path=final)

    def write_checkpoint(self, manifest: Manifest) -> None:
        """After each chunk: where a resumed pack continues. Skipped while replacing an archive,
        whose manifest must stay until the new archive is whole."""
        if not self._deferred:
            atomic_write(manifest_path(self.prefix), manifest.to_json().encode())

    def write_manifest(self, manifest: Manifest) -> None:
        """The index, the .sha256 file and the manifest are written (what a full disk fails)
        before the chunks take their names, so a replaced archive is still whole then; they
        go in last, the manifest last of all."""
        staged: list[tuple[str, str]] = []  # (temp, path)
        index, self._index = self._index, None
        if index is not None:
            staged.append((index.sync(), index.path))
        try:
            for path, data in (
                (sha256sum_path(self.prefix), manifest.sha256sum_text().encode()),
                (manifest_path(self.prefix), manifest.to_json().encode()),
            ):
                staged.append((_write_temp(path, data), path))
            try:
                if self._deferred:
                    self._swap_in(manifest)
                else:
                    self._remove_unlisted(manifest)
                _fsync_directory(self.directory)
            except OSError as exc:
                raise OutputError(
                    f"cannot put the chunks of {self.prefix} in place: {exc}"
                ) from exc
        except OutputError:
            for temp, _ in staged:
                _remove(temp)
            raise
        for temp, path in staged:
            _rename_into_place(temp, path)

    def keep_partial_chunk(self) -> None:
        """``abort`` leaves the chunk in progress under its temp name: an encrypted pack's, whose
        resume must see what it sealed there (pipeline/pack_state.py) and removes it then."""
        self._keep_partial = True

    def abort(self) -> None:
        """Remove what is not whole: the chunk in progress (unless kept), and when replacing,
        the new chunks still waiting (the old archive stays as it was)."""
        waiting, self._waiting = self._waiting, []
        temps = [temp for temp, _ in waiting]
        index, self._index = self._index, None
        if index is not None:
            index.discard()
        if self._handle is not None:
            fd, temp = self._handle
            self._handle = None
            os.close(fd)
            if not self._keep_partial:
                temps.append(temp)
        for temp in temps:
            with contextlib.suppress(OSError):
                os.unlink(temp)

    def _remove_stale_temps(self) -> None:
        """Temp chunks and manifests a killed pack left; the caller holds the prefix's lock."""
        remove_stale_temps(self.directory, self.name)

    def _remove_unlisted(self, manifest: Manifest) -> None:
        """Chunks of an interrupted run past the resumed archive's end (its sources shrank, or
        chunks were renamed after the last checkpoint) must not join ``cat PREFIX.part*``."""
        listed = {chunk.name for chunk in manifest.chunks}
        for stale in part_files(self.directory, self.name):
            if stale not in listed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.directory, stale))

    def _swap_in(self, manifest: Manifest) -> None:
        """Old manifest out first, so no moment shows it beside chunks it does not describe."""
        for old in (
            manifest_path(self.prefix),
            sha256sum_path(self.prefix),
            self.prefix + INDEX_SUFFIX,
        ):
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
    """Reads the chunks of a prefix: the manifest's list, or ``NAME.part*`` without one.

    ``by_block``: reads in order from the first chunk (an unpack) pass on each block only once
    it matched its SHA-256, when the manifest records block digests (checked_from), so what
    they write needs no second look; other reads pass bytes on as they come.
    """

    def __init__(self, prefix: str, *, by_block: bool = False) -> None:
        self.directory, self.name = split_prefix(prefix)
        self.prefix = prefix
        self.manifest = read_manifest_if_present(prefix)
        refuse_interrupted(self.manifest, prefix, " with stc pack … --resume (resume=True)")
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
            self.chunks = _numbered_chunks(self.name, names, self.directory)
        units = None
        if by_block and self.manifest is not None:
            units = block_units(self.manifest, self.chunks)
        self._units = units
        self._checked = CheckedRun()

    def checked_from(self, first: int) -> bool:
        """Reads of the chunks from ``first`` on, in order, pass on only checked bytes."""
        return first == 0 and self._units is not None

    def path(self, chunk: ChunkInfo) -> str:
        return os.path.join(self.directory, chunk.name)

    def listed_parts(self) -> list[str] | None:
        """Names of the ``NAME.part*`` files in the folder."""
        return part_files(self.directory, self.name)

    def read(self, chunk: ChunkInfo) -> Iterator[bytes | memoryview]:
        """The chunk's bytes in pieces of up to READ_SIZE; a missing file is a
        MissingChunkError. Checked block by block in an in-order read from the first chunk
        when the manifest allows it (a chunk of another size, or a block that does not match
        on FETCH_ATTEMPTS reads, is then a ChecksumMismatchError)."""
        if self._units is not None and (chunk.index == 0 or self._checked.next_is(chunk)):
            return self._checked.read(chunk, self._checked_run)
        return self._file_pieces(chunk)

    def _checked_run(self, chunk: ChunkInfo) -> tuple[list[ChunkInfo], CheckedPieces]:
        assert self._units is not None and chunk.index == 0
        offsets = list(accumulate((c.size for c in self.chunks), initial=0))[:-1]
        pieces = prefetch_units(
            self._stream(),
            self._units,
            self.chunks,
            offsets,
            self._read_span,
            FETCH_ATTEMPTS,
            strict=True,
            blame=self.damage,
        )
        return self.chunks, pieces

    def _stream(self) -> Iterator[memoryview]:
        """Every chunk's bytes in turn, each of the size the manifest gives."""
        for chunk in self.chunks:
            size = 0
            for piece in self._file_pieces(chunk, sized=True):
                size += len(piece)
                if size > chunk.size:
                    raise ChecksumMismatchError(
                        chunk.name, f"{chunk.size} bytes", f"more than {chunk.size} bytes"
                    )
                yield memoryview(piece)
            if size != chunk.size:
                raise ChecksumMismatchError(chunk.name, f"{chunk.size} bytes", f"{size} bytes")

    def _read_span(self, span: tuple[ChunkInfo, int, int]) -> memoryview:
        """Bytes ``start:end`` of a chunk, read again (a block that did not match); nothing
        when the file cannot be read now (the error then names it, from ``damage``)."""
        chunk, start, end = span
        try:
            with open_regular_file(self.path(chunk)) as handle:
                handle.seek(start)
                return memoryview(handle.read(end - start) or b"")
        except OSError:
            return memoryview(b"")

    def _file_pieces(self, chunk: ChunkInfo, *, sized: bool = False) -> Iterator[bytes]:
        """``sized``: a file whose size is not the manifest's is refused before it is read
        (a checked run stops as the last chunk's last byte goes: extra bytes after it would
        never be read)."""
        try:
            handle = open_regular_file(self.path(chunk))
        except FileNotFoundError:
            raise MissingChunkError(chunk.index, self.directory) from None
        except OSError as exc:
            raise MissingChunkError(chunk.index, f"{self.directory} ({exc})") from exc
        with handle:
            size = os.fstat(handle.fileno()).st_size if sized else chunk.size
            if size != chunk.size:
                got = f"more than {chunk.size}" if size > chunk.size else str(size)
                raise ChecksumMismatchError(chunk.name, f"{chunk.size} bytes", f"{got} bytes")
            while piece := handle.read(READ_SIZE):
                yield piece

    def damage(self, chunk: ChunkInfo) -> ChecksumMismatchError | None:
        """What is wrong with the chunk's file against the manifest (size or SHA-256), if
        anything: lets a decoding error that struck before its chunk was verified name it."""
        digest, size = hashlib.sha256(), 0
        for piece in self._file_pieces(chunk):
            digest.update(piece)
            size += len(piece)
        if size != chunk.size:
            return ChecksumMismatchError(chunk.name, f"{chunk.size} bytes", f"{size} bytes")
        if digest.hexdigest() != chunk.checksum:
            return ChecksumMismatchError(
                chunk.name, f"sha256 {chunk.checksum}", f"sha256 {digest.hexdigest()}"
            )
        return None


def _numbered_chunks(name: str, names: list[str], directory: str) -> list[ChunkInfo]:
    """Without a manifest the numbers are all there is: they must run 0, 1, 2, … (``names`` is
    in number order), or the stream would silently skip or repeat a chunk."""
    numbers = [int(entry[len(name) + len(".part") :]) for entry in names]
    for index, number in enumerate(numbers):
        if number == index:
            continue
        if index and number == numbers[index - 1]:
            raise UsageError(
                f"{names[index - 1]} and {names[index]} in {directory} both are chunk {number}; "
                "keep one"
            )
        raise MissingChunkError(index, directory)
    return [ChunkInfo(index=i, name=n, size=-1, checksum="") for i, n in enumerate(names)]


def refuse_interrupted(manifest: Manifest | None, where: str, how: str) -> None:
    """An interrupted pack's checkpoint is not an archive to read: say how to finish it."""
    if manifest is not None and not manifest.complete:
        raise ManifestError(
            f"{where} is an interrupted pack ({manifest.total_chunks} chunk(s) so far): "
            f"finish it first{how}"
        )


def read_manifest_if_present(prefix: str) -> Manifest | None:
    """The prefix's manifest; chunks a seed manifest leaves unnamed get the names on disk."""
    try:
        manifest = read_manifest_file(manifest_path(prefix))
    except FileNotFoundError:
        return None
    if all(chunk.name for chunk in manifest.chunks):
        return manifest
    directory, name = split_prefix(prefix)
    return manifest.with_chunk_names(name, suffix_width_of(name, part_files(directory, name)))


def read_manifest_file(path: str) -> Manifest:
    """A manifest file, read with the size cap and refusing anything but a regular file;
    FileNotFoundError when it does not exist."""
    try:
        with open_regular_file(path) as handle:
            text = handle.read(MAX_MANIFEST_SIZE + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from exc
    if len(text) > MAX_MANIFEST_SIZE:
        raise ManifestError(f"{path} is larger than {MAX_MANIFEST_SIZE >> 20} MiB: not ours")
    return Manifest.from_json(text, source=path)


def suffix_width_of(name: str, parts: list[str]) -> int:
    """Digits in the chunk numbers of ``parts`` (``NAME.part…`` names): 4, as ``split -a 4``
    writes, unless they all have more (an archive of more than 10,000 chunks)."""
    widths = {len(part) - len(name) - len(".part") for part in parts}
    return max(4, *widths) if len(widths) == 1 else 4


def open_regular_file(path: str) -> io.FileIO:
    """Open for reading, refusing anything but a regular file: a FIFO planted in place of a
    chunk or manifest would otherwise block ``open`` forever, a device read forever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        os.set_blocking(fd, True)
        return io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise
