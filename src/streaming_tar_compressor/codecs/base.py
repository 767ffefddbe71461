"""The contract every codec module fulfils; sans-IO, so the pipelines own all threads and I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..errors import ManifestError
from ..models import CompressionType

Buffer = bytes | bytearray | memoryview  # what decoders accept: no copy needed to call them
# An encoder's framing state between blocks, as JSON values: a resumed pack continues from it.
EncoderState = dict[str, int | str]


@dataclass(frozen=True, slots=True)
class EncodedBlock:
    """One independently compressed block, framed and ready to go into the stream.

    ``raw_crc32`` is the CRC-32 of the uncompressed block for codecs whose trailer needs it
    (gzip), else 0.
    """

    data: bytes
    raw_size: int
    raw_crc32: int = 0


@dataclass(frozen=True, slots=True)
class DecodedBlock:
    """One block decoded on its own; ``raw_crc32`` as in EncodedBlock (gzip needs it)."""

    data: bytes
    raw_crc32: int = 0


@dataclass(frozen=True, slots=True)
class BlockExtent:
    """Where a block sits, from the manifest: what the stream check needs per block."""

    raw_size: int
    compressed_size: int
    raw_crc32: int = 0


class BlockEncoder(Protocol):
    """Framing state of one compressed stream.

    ``encode_block`` is pure and thread-safe: the pipeline calls it from worker threads, in any
    order. ``add_block`` is called once per block, in stream order, from one thread; it records
    what the trailer needs and returns the bytes to write for that block: ``encoded.data``.
    """

    def header(self) -> bytes: ...

    def encode_block(self, block: bytes) -> EncodedBlock: ...

    def add_block(self, encoded: EncodedBlock) -> bytes: ...

    def trailer(self) -> bytes: ...

    def state(self) -> EncoderState:
        """What ``add_block`` has recorded so far (trailer inputs), as JSON values."""
        ...

    def restore(self, state: EncoderState) -> None:
        """Continue after the blocks ``state`` describes (a resumed pack); bad state raises
        ManifestError, since it comes from a checkpoint on disk."""
        ...


def state_int(state: EncoderState, key: str, maximum: int | None = None) -> int:
    value = state.get(key)
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < 0
        or (maximum is not None and value > maximum)
    ):
        raise ManifestError(f"the checkpoint's encoder state has no valid {key!r}")
    return value


def state_bytes(state: EncoderState, key: str) -> bytes:
    value = state.get(key)
    try:
        if not isinstance(value, str):
            raise ValueError(key)
        return bytes.fromhex(value)
    except ValueError:
        raise ManifestError(f"the checkpoint's encoder state has no valid {key!r}") from None


class StreamDecoder(Protocol):
    """Decodes one whole compressed stream, ours or any other tool's, in bounded memory.

    ``feed`` appends input; ``read(max_size)`` returns up to ``max_size`` decoded bytes, or b""
    when it needs more input; ``close`` says the input has ended (after ``read`` returned b"")
    and raises TruncatedStreamError if the stream stopped early. Bad data raises
    CorruptStreamError; no library exception escapes.
    """

    def feed(self, data: Buffer) -> None: ...

    def read(self, max_size: int) -> bytes: ...

    def close(self) -> None: ...


class Codec(Protocol):
    """One row of DESIGN.md's codec table."""

    kind: CompressionType
    default_level: int
    min_level: int
    max_level: int
    default_block_size: int
    tar_flag: str

    def new_encoder(self, level: int, block_size: int) -> BlockEncoder: ...

    def new_decoder(self) -> StreamDecoder: ...

    def max_encoded_size(self, raw_size: int, block_size: int) -> int: ...

    def decode_block(self, data: bytes, raw_size: int) -> DecodedBlock:
        """Decode one block of OUR framing alone (pure, thread-safe): ``data`` is exactly the
        block's bytes in the stream; a result of another size, or a bad check, raises
        CorruptStreamError."""
        ...

    def check_stream(self, header: bytes, trailer: bytes, blocks: list[BlockExtent]) -> None:
        """After parallel decoding: the header and trailer must agree with the blocks (gzip
        CRC-32 and size, xz index, zstd seek table), else CorruptStreamError."""
        ...
