"""Pack files and folders into numbered, SHA-256-checked chunks with one call.

Shows ``compress_with_chunks``: it writes ``PREFIX.part0000``, ``PREFIX.part0001``, … plus
``PREFIX.manifest.json`` and returns one ``ChunkInfo`` per chunk.

Run:  python examples/basic_compress.py my_data/ notes.txt -o backups/home -c zstd
Then: python examples/basic_decompress.py backups/home -C restored/
"""

from __future__ import annotations

import argparse
import asyncio

from streaming_tar_compressor import CompressionType, compress_with_chunks


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", metavar="SRC")
    parser.add_argument("-o", "--output", required=True, metavar="PREFIX")
    parser.add_argument(
        "-c", "--compression", default="gzip", choices=[codec.value for codec in CompressionType]
    )
    parser.add_argument("--chunk-size", type=int, default=50 * 2**20, metavar="BYTES")
    args = parser.parse_args(argv)

    chunks = await compress_with_chunks(
        args.sources, args.output, compression=args.compression, chunk_size=args.chunk_size
    )
    total = sum(chunk.size for chunk in chunks)
    print(f"{len(chunks)} chunk(s), {total} bytes: {chunks[0].path} … {chunks[-1].path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
