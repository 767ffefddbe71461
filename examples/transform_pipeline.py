"""Transform every chunk on its way out and undo it on the way back, checksums still verified.

Chunks pass through a reversible transform before they are "uploaded" (written to DIR as
``chunk-00000.xor``, …), then are read back, transformed back and unpacked with the manifest,
so each restored chunk is checked against the SHA-256 of the original: a wrong key or a
damaged file is caught before any file from that chunk becomes visible.

The transform XORs each chunk with a keystream from SHA-256 in counter mode. It is a DEMO of
where a transform plugs in — it is NOT encryption (no authentication, no nonce handling): use
a real AEAD (e.g. AES-GCM from the ``cryptography`` package) for secrecy.

Run:  python examples/transform_pipeline.py my_data/ -o staged/ --restore-to restored/
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

from streaming_tar_compressor import CompressionType, Manifest, StreamingTarCompressor


def keystream(key: bytes, index: int, length: int) -> bytes:
    """``length`` bytes of SHA-256(key-hash, chunk index, counter): a different stream per chunk."""
    seed = hashlib.sha256(key).digest() + index.to_bytes(8, "big")
    blocks = (length + 31) // 32
    stream = b"".join(hashlib.sha256(seed + n.to_bytes(8, "big")).digest() for n in range(blocks))
    return stream[:length]


def xor_chunk(key: bytes, index: int, data: bytes) -> bytes:
    """The transform; applied twice with the same key and index it gives the data back."""
    mixed = int.from_bytes(data, "big") ^ int.from_bytes(keystream(key, index, len(data)), "big")
    return mixed.to_bytes(len(data), "big")


async def send(key: bytes, sources: list[str], staging: Path, chunk_size: int) -> None:
    """Packs, transforms and stores each chunk as it is made, then the manifest."""
    staging.mkdir(parents=True, exist_ok=True)
    compressor = StreamingTarCompressor(CompressionType.ZSTD, chunk_size=chunk_size)
    async for index, data in compressor.compress_to_chunks(sources):
        transformed = await asyncio.to_thread(xor_chunk, key, index, data)
        await asyncio.to_thread((staging / f"chunk-{index:05d}.xor").write_bytes, transformed)
    assert compressor.manifest is not None  # set once the last chunk is out
    (staging / "manifest.json").write_text(compressor.manifest.to_json())
    print(f"stored {compressor.manifest.total_chunks} transformed chunk(s) in {staging}")


async def untransformed(key: bytes, staging: Path, count: int) -> AsyncIterator[tuple[int, bytes]]:
    """Reads the stored chunks back and undoes the transform, one chunk in memory at a time."""
    for index in range(count):
        data = await asyncio.to_thread((staging / f"chunk-{index:05d}.xor").read_bytes)
        yield index, await asyncio.to_thread(xor_chunk, key, index, data)


async def receive(key: bytes, staging: Path, directory: str) -> None:
    """Unpacks from the stored chunks; the manifest's checksums are of the untransformed ones."""
    manifest = Manifest.from_json((staging / "manifest.json").read_text())
    chunks = untransformed(key, staging, manifest.total_chunks)
    result = await StreamingTarCompressor().decompress_from_chunks(
        chunks, directory, manifest=manifest
    )
    checked = "every chunk verified" if result.verified else "not verified"
    print(f"restored {result.members} member(s) into {directory}, {checked}")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", metavar="SRC")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="DIR")
    parser.add_argument("--restore-to", required=True, metavar="DIR2")
    parser.add_argument("--key", default="demo key, not a secret")
    parser.add_argument("--chunk-size", type=int, default=1 * 2**20, metavar="BYTES")
    args = parser.parse_args(argv)

    await send(args.key.encode(), args.sources, args.output, args.chunk_size)
    await receive(args.key.encode(), args.output, args.restore_to)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
