"""``stc unpack`` of a local archive whose chunk reads are held to a link's rate, with no
network at all: the best a restore from a store at that rate could do with this extraction
speed. remote_bench.py compares ``unpack from S3`` with it, to tell the cost of the network
path (requests, checking whole chunks before decoding) from that of extracting.

    .venv/bin/python benchmarks/throttled_unpack.py 40 PREFIX -C DIR -q   # 40 MB/s
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

from streaming_tar_compressor.cli.main import main
from streaming_tar_compressor.models import ChunkInfo
from streaming_tar_compressor.storage.local import LocalChunkSource


def hold_reads_to(rate: float) -> None:
    """Every chunk read from then on waits until the bytes read so far took ``rate``."""
    read = LocalChunkSource.read
    started: list[float] = []
    done = [0]

    def throttled(source: LocalChunkSource, chunk: ChunkInfo) -> Iterator[bytes]:
        if not started:
            started.append(time.monotonic())
        for piece in read(source, chunk):
            done[0] += len(piece)
            wait = started[0] + done[0] / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            yield piece

    LocalChunkSource.read = throttled  # type: ignore[method-assign]


if __name__ == "__main__":
    hold_reads_to(float(sys.argv[1]) * 1e6)
    sys.exit(main(["unpack", *sys.argv[2:]]))
