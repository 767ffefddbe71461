"""Track progress of a pack and an unpack with an async callback object.

Shows that ``progress_callback`` may be a coroutine function — here a bound ``async def``
method — called once per archive member with ``(path, size)``. The work waits for each call,
so the callback may itself await (log to a socket, update a UI) without losing events.

Run:  python examples/progress_tracker.py my_data/ -o backups/home -C restored/
"""

from __future__ import annotations

import argparse
import asyncio
import time

from streaming_tar_compressor import compress_with_chunks, decompress_from_chunks


class ProgressTracker:
    """Counts members and bytes, printing a line every ``every`` members."""

    def __init__(self, label: str, every: int = 10) -> None:
        self.label = label
        self.every = every
        self.files = 0
        self.bytes = 0
        self.started = time.monotonic()

    async def on_file(self, path: str, size: int) -> None:
        self.files += 1
        self.bytes += size
        if self.files % self.every == 0:
            print(f"  {self.label}: {self.files} members, {self.bytes} bytes, last {path}")

    def summary(self) -> str:
        seconds = time.monotonic() - self.started
        return f"{self.label} {self.files} members, {self.bytes} bytes in {seconds:.2f}s"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", metavar="SRC")
    parser.add_argument("-o", "--output", required=True, metavar="PREFIX")
    parser.add_argument("-C", "--directory", help="where to unpack (default: PREFIX-restored)")
    parser.add_argument("--every", type=int, default=10, metavar="N")
    args = parser.parse_args(argv)
    directory = args.directory or f"{args.output}-restored"

    packing = ProgressTracker("packed", args.every)
    await compress_with_chunks(args.sources, args.output, progress_callback=packing.on_file)
    print(packing.summary())

    unpacking = ProgressTracker("unpacked", args.every)
    await decompress_from_chunks(args.output, directory, progress_callback=unpacking.on_file)
    print(unpacking.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
