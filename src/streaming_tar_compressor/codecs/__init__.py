"""The codec registry: each codec module is imported on first use, so one whose library is
missing only fails when that codec is asked for."""

from __future__ import annotations

import importlib

from ..models import CompressionType
from .base import Codec

# Each module exposes a module-level ``CODEC``.
_MODULES: dict[CompressionType, str] = {
    CompressionType.GZIP: "gzip",
    CompressionType.BZIP2: "bzip2",
    CompressionType.XZ: "xz",
    CompressionType.LZ4: "lz4",
    CompressionType.ZSTD: "zstd",
    CompressionType.NONE: "none",
}


def codec_for(kind: CompressionType) -> Codec:
    """The codec object for ``kind``."""
    module = importlib.import_module(f"{__name__}.{_MODULES[kind]}")
    codec: Codec = module.CODEC
    return codec
