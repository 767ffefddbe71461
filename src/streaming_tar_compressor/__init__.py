"""Pack trees into compressed tar streams split into SHA-256-checked chunks, and back."""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from .core.manifest import Manifest
from .encryption import X25519Identity, X25519Recipient
from .errors import (
    ArchiveBusyError,
    ArchiveDamagedError,
    ChecksumMismatchError,
    CompressionMismatchError,
    CorruptStreamError,
    DecryptionError,
    LimitExceededError,
    ManifestError,
    MemberNotFoundError,
    MissingChunkError,
    OutputError,
    SourceChangedError,
    SourceError,
    StcError,
    StoreError,
    TransientStoreError,
    TruncatedStreamError,
    UnsafeMemberError,
    UsageError,
)
from .models import ChunkInfo, CompressionType, MemberKind, TarMember
from .pipeline.diff import Difference
from .pipeline.extract import ExtractResult
from .pipeline.pack import PackResult
from .pipeline.unpack import UnpackResult
from .pipeline.verify import VerifyReport
from .progress import NullProgress, Progress
from .sync import (
    diff,
    extract,
    iter_chunks,
    keygen,
    list_members,
    open_member,
    pack,
    read_manifest,
    rebuild_index,
    unlock,
    unpack,
    unpack_stream,
    verify,
)

if TYPE_CHECKING:
    from .aio import StreamingTarCompressor, compress_with_chunks, decompress_from_chunks

# The asyncio API is imported when first used: asyncio alone is ~40 ms of every ``stc`` start.
_ASYNC_NAMES = frozenset(
    {"StreamingTarCompressor", "compress_with_chunks", "decompress_from_chunks"}
)


def __getattr__(name: str) -> Any:
    if name in _ASYNC_NAMES:
        from . import aio

        return getattr(aio, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ArchiveBusyError",
    "ArchiveDamagedError",
    "ChecksumMismatchError",
    "ChunkInfo",
    "CompressionMismatchError",
    "CompressionType",
    "CorruptStreamError",
    "DecryptionError",
    "Difference",
    "ExtractResult",
    "LimitExceededError",
    "Manifest",
    "ManifestError",
    "MemberKind",
    "MemberNotFoundError",
    "MissingChunkError",
    "NullProgress",
    "OutputError",
    "PackResult",
    "Progress",
    "SourceChangedError",
    "SourceError",
    "StcError",
    "StoreError",
    "StreamingTarCompressor",
    "TarMember",
    "TransientStoreError",
    "TruncatedStreamError",
    "UnpackResult",
    "UnsafeMemberError",
    "UsageError",
    "VerifyReport",
    "X25519Identity",
    "X25519Recipient",
    "__version__",
    "compress_with_chunks",
    "decompress_from_chunks",
    "diff",
    "extract",
    "iter_chunks",
    "keygen",
    "list_members",
    "open_member",
    "pack",
    "read_manifest",
    "rebuild_index",
    "unlock",
    "unpack",
    "unpack_stream",
    "verify",
]
