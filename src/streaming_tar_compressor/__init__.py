"""Pack trees into compressed tar streams split into SHA-256-checked chunks, and back."""

from __future__ import annotations

__version__ = "0.1.0"

from .aio import StreamingTarCompressor, compress_with_chunks, decompress_from_chunks
from .core.manifest import Manifest
from .errors import (
    ArchiveBusyError,
    ArchiveDamagedError,
    ChecksumMismatchError,
    CompressionMismatchError,
    CorruptStreamError,
    LimitExceededError,
    ManifestError,
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
from .pipeline.pack import PackResult
from .pipeline.unpack import UnpackResult
from .pipeline.verify import VerifyReport
from .progress import NullProgress, Progress
from .sync import (
    iter_chunks,
    list_members,
    pack,
    read_manifest,
    unlock,
    unpack,
    unpack_stream,
    verify,
)

__all__ = [
    "ArchiveBusyError",
    "ArchiveDamagedError",
    "ChecksumMismatchError",
    "ChunkInfo",
    "CompressionMismatchError",
    "CompressionType",
    "CorruptStreamError",
    "LimitExceededError",
    "Manifest",
    "ManifestError",
    "MemberKind",
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
    "__version__",
    "compress_with_chunks",
    "decompress_from_chunks",
    "iter_chunks",
    "list_members",
    "pack",
    "read_manifest",
    "unlock",
    "unpack",
    "unpack_stream",
    "verify",
]
