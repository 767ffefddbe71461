"""Restore a tree from the chunks that basic_compress.py (or ``stc pack``) wrote.

Shows ``decompress_from_chunks``: every chunk's SHA-256 is checked against the manifest as it
is read, and the codec is detected from the first bytes.

Run:  python examples/basic_decompress.py backups/home -C restored/
"""

from __future__ import annotations

import argparse
import asyncio

from streaming_tar_compressor import decompress_from_chunks


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", metavar="PREFIX")
    parser.add_argument("-C", "--directory", required=True, metavar="DIR")
    args = parser.parse_args(argv)

    result = await decompress_from_chunks(args.prefix, args.directory)
    checked = "every chunk verified" if result.verified else "not verified"
    print(f"restored {result.members} member(s) into {args.directory}, {checked}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
