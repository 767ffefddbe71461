"""The synchronous API, for scripts without an event loop; the CLI drives the same calls."""

from __future__ import annotations

import datetime
import io
import os
from collections.abc import Generator, Iterable, Sequence

from .core.manifest import Manifest
from .encryption import (
    IdentitySpec,
    RecipientSpec,
    X25519Identity,
    identities_from,
    keygen_text,
    recipients_from,
)
from .errors import ManifestError, OutputError
from .models import CompressionType, TarMember
from .pipeline import diff as diff_pipeline
from .pipeline import extract as extract_pipeline
from .pipeline import listing, reindex
from .pipeline import pack as pack_pipeline
from .pipeline import unpack as unpack_pipeline
from .pipeline import verify as verify_pipeline
from .pipeline.diff import Difference
from .pipeline.extract import ExtractResult
from .pipeline.pack import DEFAULT_CHUNK_SIZE, ChunkIterator, PackResult, PackSettings
from .pipeline.unpack import UnpackResult
from .pipeline.verify import VerifyReport
from .progress import FileCallback, FileCallbackProgress, Progress
from .storage.archive import read_manifest_at
from .storage.follow import DEFAULT_FOLLOW_TIMEOUT
from .storage.local import READ_SIZE, manifest_path
from .storage.location import RemotePrefix, parse_prefix
from .storage.remote import remove_lock
from .storage.store import open_store

StrPath = str | os.PathLike[str]


def pack(
    sources: StrPath | Sequence[StrPath],
    output_prefix: StrPath,
    *,
    compression: CompressionType | str = CompressionType.GZIP,
    level: int | None = None,
    chunk_size: int | str | None = None,
    block_size: int | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    progress_callback: FileCallback | None = None,
    force: bool = False,
    resume: bool = False,
    content_digests: bool = False,
    recipients: Sequence[RecipientSpec] = (),
    passphrase: str | None = None,
) -> PackResult:
    """Packs files and directories into ``PREFIX.part0000``… plus manifest, ``.sha256`` and
    the member index ``PREFIX.index``.

    ``chunk_size`` in bytes, or ``"auto"`` (from the input's size); None: 50 MiB for a local
    prefix, ``"auto"`` for an object-store URL.

    ``resume=True`` continues a pack that was interrupted (killed, disk full, …) from its last
    complete chunk, with the same sources and options, to the bytes an uninterrupted run writes.

    ``content_digests=True`` puts each file's SHA-256 in the index (``stc diff`` then compares
    content without reading the archive), at the cost of hashing every byte once more.

    ``recipients`` (``age1…`` keys) or ``passphrase`` encrypt the archive with age: its
    chunks joined are an age file (README "Encrypted archives").
    """
    if chunk_size is None:
        remote = isinstance(parse_prefix(os.fspath(output_prefix)), RemotePrefix)
        chunk_size = "auto" if remote else DEFAULT_CHUNK_SIZE
    settings = PackSettings.build(compression, level, chunk_size, block_size, workers)
    return pack_pipeline.pack(
        _paths(sources),
        os.fspath(output_prefix),
        settings,
        progress=_progress(progress, progress_callback),
        force=force,
        resume=resume,
        content_digests=content_digests,
        recipients=recipients_from(recipients, passphrase),
    )


def iter_chunks(
    sources: StrPath | Sequence[StrPath],
    *,
    compression: CompressionType | str = CompressionType.GZIP,
    level: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    block_size: int | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    progress_callback: FileCallback | None = None,
    name: str = "chunks",
    recipients: Sequence[RecipientSpec] = (),
    passphrase: str | None = None,
) -> ChunkIterator:
    """Packs into memory: ``(index, bytes)`` per chunk as each is complete, nothing on disk.

    After the last chunk, ``.manifest`` describes the archive, its chunks named
    ``NAME.part0000``… as if packed to the prefix ``NAME``. ``recipients`` or ``passphrase``
    encrypt them (as ``pack``).
    """
    settings = PackSettings.build(compression, level, chunk_size, block_size, workers)
    return ChunkIterator(
        _paths(sources),
        settings,
        progress=_progress(progress, progress_callback),
        prefix_name=name,
        recipients=recipients_from(recipients, passphrase),
    )


def unpack(
    input_prefix: StrPath,
    output_dir: StrPath,
    *,
    compression: CompressionType | str | None = None,
    verify_checksum: bool = True,
    progress: Progress | None = None,
    progress_callback: FileCallback | None = None,
    same_owner: bool = False,
    same_permissions: bool = False,
    max_output_bytes: int | None = None,
    max_members: int | None = None,
    resume: bool = False,
    follow: bool = False,
    follow_timeout: float = DEFAULT_FOLLOW_TIMEOUT,
    identities: Sequence[IdentitySpec] = (),
    passphrase: str | None = None,
) -> UnpackResult:
    """Restores ``PREFIX.part*`` into ``output_dir``, checking every chunk against the manifest.

    ``max_output_bytes`` and ``max_members`` (None: no cap) stop a decompression bomb with
    LimitExceededError before the member that would pass them is written. ``resume`` skips
    what an interrupted unpack into ``output_dir`` restored (a first run when there was none).
    ``follow`` (a store URL) restores while another machine is still packing to it, waiting
    up to ``follow_timeout`` seconds for each new chunk. An encrypted archive opens with
    one of ``identities`` (``AGE-SECRET-KEY-1…`` keys or identity files) or ``passphrase``.
    """
    return unpack_pipeline.unpack(
        os.fspath(input_prefix),
        os.fspath(output_dir),
        compression=None if compression is None else CompressionType.parse(compression),
        verify_checksum=verify_checksum,
        progress=_progress(progress, progress_callback),
        same_owner=same_owner,
        same_permissions=same_permissions,
        max_output_bytes=max_output_bytes,
        max_members=max_members,
        resume=resume,
        follow_timeout=follow_timeout if follow else None,
        identities=identities_from(identities, passphrase),
    )


def unpack_stream(
    pieces: Iterable[bytes],
    output_dir: StrPath,
    *,
    compression: CompressionType | str | None = None,
    progress: Progress | None = None,
    progress_callback: FileCallback | None = None,
    same_owner: bool = False,
    same_permissions: bool = False,
    max_output_bytes: int | None = None,
    max_members: int | None = None,
) -> UnpackResult:
    """Restores one compressed tar stream given as byte pieces (no manifest, so no checksums)."""
    return unpack_pipeline.unpack_stream(
        pieces,
        os.fspath(output_dir),
        compression=None if compression is None else CompressionType.parse(compression),
        progress=_progress(progress, progress_callback),
        same_owner=same_owner,
        same_permissions=same_permissions,
        max_output_bytes=max_output_bytes,
        max_members=max_members,
    )


def verify(
    prefix: StrPath,
    *,
    deep: bool = False,
    progress: Progress | None = None,
    identities: Sequence[IdentitySpec] = (),
    passphrase: str | None = None,
) -> VerifyReport:
    """Checks every chunk (``deep``: and the decoded contents); the report lists every problem.
    An encrypted archive given a key or passphrase: every age chunk opened, and the stream
    inside checked by the sealed digests."""
    return verify_pipeline.verify(
        os.fspath(prefix),
        deep=deep,
        progress=progress,
        identities=identities_from(identities, passphrase),
    )


def list_members(
    prefix: StrPath,
    members: Sequence[str] = (),
    *,
    compression: CompressionType | str | None = None,
    wildcards: bool = False,
    identities: Sequence[IdentitySpec] = (),
    passphrase: str | None = None,
) -> Generator[TarMember, None, None]:
    """The archive's members in stream order: from its member index when it has one (no
    chunk is read), else decoded without writing anything. ``members`` selects by name (a
    folder selects its subtree) or, with ``wildcards``, by glob pattern; a name or pattern
    that selects nothing raises MemberNotFoundError after the others are listed. An
    encrypted archive is opened with ``identities`` or ``passphrase``."""
    stated = None if compression is None else CompressionType.parse(compression)
    return listing.list_members(
        os.fspath(prefix),
        compression=stated,
        members=members,
        wildcards=wildcards,
        identities=identities_from(identities, passphrase),
    )


def extract(
    prefix: StrPath,
    members: Sequence[str],
    output_dir: StrPath,
    *,
    wildcards: bool = False,
    compression: CompressionType | str | None = None,
    progress: Progress | None = None,
    progress_callback: FileCallback | None = None,
    same_owner: bool = False,
    same_permissions: bool = False,
    max_output_bytes: int | None = None,
    max_members: int | None = None,
    identities: Sequence[IdentitySpec] = (),
    passphrase: str | None = None,
) -> ExtractResult:
    """Restores only the selected members (names; a folder selects its subtree; with
    ``wildcards``, glob patterns), reading only the blocks that hold them, each checked
    against its SHA-256 before it is decoded. Needs the member index; a hardlink whose target
    is not selected gets the target's content. An encrypted archive is opened with
    ``identities`` or ``passphrase``."""
    return extract_pipeline.extract(
        os.fspath(prefix),
        members,
        os.fspath(output_dir),
        wildcards=wildcards,
        compression=None if compression is None else CompressionType.parse(compression),
        progress=_progress(progress, progress_callback),
        same_owner=same_owner,
        same_permissions=same_permissions,
        max_output_bytes=max_output_bytes,
        max_members=max_members,
        identities=identities_from(identities, passphrase),
    )


def open_member(
    prefix: StrPath,
    name: str,
    *,
    identities: Sequence[IdentitySpec] = (),
    passphrase: str | None = None,
) -> io.BufferedReader:
    """One regular file's content as a readable binary file, read block by block (memory:
    a few blocks); its SHA-256 is checked at the end when the index records one. An
    encrypted archive is opened with ``identities`` or ``passphrase``."""
    reader = extract_pipeline.MemberReader(
        os.fspath(prefix), name, identities_from(identities, passphrase)
    )
    return io.BufferedReader(reader, READ_SIZE)


def diff(
    prefix: StrPath,
    sources: StrPath | Sequence[StrPath] = (),
    *,
    directory: StrPath | None = None,
    identities: Sequence[IdentitySpec] = (),
    passphrase: str | None = None,
) -> Generator[Difference, None, None]:
    """What differs between the archive and ``sources`` (as ``pack`` took them), or the tree
    restored into ``directory``: new, missing and changed files (type, size, mode, mtime,
    link target, content), in walk order. Needs the member index; with content digests in
    it, no chunk is read. An encrypted archive is opened with ``identities`` or
    ``passphrase``."""
    return diff_pipeline.diff(
        os.fspath(prefix),
        _paths(sources) if sources else [],
        directory=None if directory is None else os.fspath(directory),
        identities=identities_from(identities, passphrase),
    )


def rebuild_index(
    prefix: StrPath, *, content_digests: bool = False, progress: Progress | None = None
) -> Manifest:
    """Writes the member index of an archive that has none (or a lost or damaged one) by
    decoding it once, every chunk verified; returns the manifest that now pins it."""
    return reindex.rebuild_index(
        os.fspath(prefix), content_digests=content_digests, progress=progress
    )


def read_manifest(prefix: StrPath) -> Manifest:
    manifest = read_manifest_at(os.fspath(prefix))
    if manifest is None:
        raise ManifestError(f"{manifest_path(os.fspath(prefix))} does not exist")
    return manifest


def unlock(prefix: StrPath, *, force: bool = False) -> str | None:
    """Removes the lock object a pack to a store left when it died; returns who held it
    (None: there was none). A lock refreshed in the last 30 minutes whose process is not
    provably gone needs ``force``. Local prefixes need none of this: their lock dies with its
    process."""
    location = parse_prefix(os.fspath(prefix))
    if not isinstance(location, RemotePrefix):
        return None
    return remove_lock(location, open_store(location), force=force)


def _paths(sources: StrPath | Sequence[StrPath]) -> list[str]:
    if isinstance(sources, (str, os.PathLike)):
        return [os.fspath(sources)]
    return [os.fspath(s) for s in sources]


def _progress(progress: Progress | None, callback: FileCallback | None) -> Progress | None:
    if progress is not None or callback is None:
        return progress
    return FileCallbackProgress(callback)


def keygen(output: StrPath) -> X25519Identity:
    """A new age X25519 identity written to ``output`` (mode 0600, as ``age-keygen -o``
    writes it; an existing file is never replaced). Its ``.recipient`` is what to encrypt to."""
    identity = X25519Identity.generate()
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = os.fspath(output)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise OutputError(f"{path} exists already: an identity file is never replaced") from None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(keygen_text(identity, created))
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(path)  # never a half-written key file left to be trusted
        raise
    return identity
