"""Consume chunks as they are made, with your own handler, instead of files the library names.

Shows ``StreamingTarCompressor.compress_to_chunks``: an async iterator of ``(index, bytes)``;
the next chunk is compressed while you handle this one, and at most two exist at once. Here the
handler writes ``DIR/chunk-00000.bin``, … and prints each SHA-256; afterwards
``compressor.manifest`` describes the archive and is written as ``DIR/manifest.json``.

Run:  python examples/custom_streaming.py my_data/ -o out/
The manifest names the chunks ``chunks.part0000``…, not these files: to restore, feed the files
in order to ``StreamingTarCompressor().decompress_from_chunks(..., manifest="out/manifest.json")``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
from pathlib import Path

from streaming_tar_compressor import CompressionType, StreamingTarCompressor


async def save_chunk(directory: Path, index: int, data: bytes) -> None:
    """The per-chunk handler; file I/O goes to a thread so the event loop keeps running."""
    path = directory / f"chunk-{index:05d}.bin"
    await asyncio.to_thread(path.write_bytes, data)
    print(f"{path}  {len(data)} bytes  sha256 {hashlib.sha256(data).hexdigest()}")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", metavar="SRC")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="DIR")
    parser.add_argument("--chunk-size", type=int, default=1 * 2**20, metavar="BYTES")
    args = parser.parse_args(argv)

    args.output.mkdir(parents=True, exist_ok=True)
    compressor = StreamingTarCompressor(CompressionType.ZSTD, chunk_size=args.chunk_size)
    async for index, data in compressor.compress_to_chunks(args.sources):
        await save_chunk(args.output, index, data)
    assert compressor.manifest is not None  # set once the last chunk is out
    (args.output / "manifest.json").write_text(compressor.manifest.to_json())
    print(f"{compressor.manifest.total_chunks} chunk(s) and manifest.json in {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
