"""Stream an archive to an HTTP chunk store and back, never holding it whole anywhere.

``upload`` packs with ``compress_to_chunks`` and PUTs each chunk as soon as it exists (the next
one is compressed meanwhile), then PUTs the manifest. ``download`` GETs the manifest, then
chunks 0, 1, 2… until a 404, and feeds the response bodies piece by piece into
``decompress_from_chunks``: files appear while the download runs, each chunk checked against
the manifest's SHA-256 before the files it finishes are made visible.

Run, with examples/chunk_server.py listening on URL:
  python examples/http_transfer.py upload my_data/ --url http://127.0.0.1:8080 -c zstd
  python examples/http_transfer.py download --url http://127.0.0.1:8080 -C restored/
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence

import aiohttp

from streaming_tar_compressor import CompressionType, StreamingTarCompressor

PIECE = 64 * 1024


async def put(session: aiohttp.ClientSession, url: str, data: bytes | str, kind: str) -> None:
    async with session.put(url, data=data, headers={"Content-Type": kind}) as response:
        response.raise_for_status()


async def upload(sources: Sequence[str], url: str, compression: str, chunk_size: int) -> int:
    compressor = StreamingTarCompressor(compression, chunk_size=chunk_size)
    async with aiohttp.ClientSession() as session:
        async for index, data in compressor.compress_to_chunks(sources):
            await put(session, f"{url}/chunks/{index}", data, "application/octet-stream")
        assert compressor.manifest is not None  # set once the last chunk is out
        await put(session, f"{url}/manifest", compressor.manifest.to_json(), "application/json")
    print(f"uploaded {compressor.manifest.total_chunks} chunk(s) and the manifest to {url}")
    return 0


async def chunk_pieces(session: aiohttp.ClientSession, url: str) -> AsyncIterator[bytes]:
    """The archive's bytes as they arrive: chunk 0, 1, 2… until the store has no more."""
    for index in itertools.count():
        async with session.get(f"{url}/chunks/{index}") as response:
            if response.status == 404:
                return
            response.raise_for_status()
            async for piece in response.content.iter_chunked(PIECE):
                yield piece


async def download(url: str, directory: str) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/manifest") as response:
            response.raise_for_status()
            manifest = await response.json()
        result = await StreamingTarCompressor().decompress_from_chunks(
            chunk_pieces(session, url), directory, manifest=manifest
        )
    checked = "every chunk verified" if result.verified else "not verified"
    print(f"restored {result.members} member(s) into {directory}, {checked}")
    return 0


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("upload", help="pack sources and PUT the chunks")
    up.add_argument("sources", nargs="+", metavar="SRC")
    up.add_argument("--url", required=True)
    up.add_argument(
        "-c", "--compression", default="gzip", choices=[codec.value for codec in CompressionType]
    )
    up.add_argument("--chunk-size", type=int, default=50 * 2**20, metavar="BYTES")
    down = commands.add_parser("download", help="GET the chunks and unpack them")
    down.add_argument("--url", required=True)
    down.add_argument("-C", "--directory", required=True, metavar="DIR")
    args = parser.parse_args(argv)

    url = args.url.rstrip("/")
    if args.command == "upload":
        return await upload(args.sources, url, args.compression, args.chunk_size)
    return await download(url, args.directory)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
