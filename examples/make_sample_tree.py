"""Builds a small, deterministic sample tree for ``make demo``: text, binary, links, empty dir."""

from __future__ import annotations

import os
import random
import sys


def make_sample_tree(root: str, megabytes: int = 8) -> None:
    rng = random.Random(20261127)
    os.makedirs(os.path.join(root, "docs", "notes"), exist_ok=True)
    os.makedirs(os.path.join(root, "data"), exist_ok=True)
    os.makedirs(os.path.join(root, "empty"), exist_ok=True)
    words = ["stream", "chunk", "tar", "block", "verify", "restore", "gzip", "zstd", "safe"]
    for i in range(40):
        text = " ".join(rng.choice(words) for _ in range(2000 + 50 * i))
        with open(os.path.join(root, "docs", f"page-{i:02d}.txt"), "w") as handle:
            handle.write(text + "\n")
    with open(os.path.join(root, "docs", "notes", "naïve café.md"), "w") as handle:
        handle.write("# non-ASCII names survive the round trip\n")
    with open(os.path.join(root, "data", "random.bin"), "wb") as handle:
        handle.write(rng.randbytes(megabytes * 2**20 // 2))
    with open(os.path.join(root, "data", "zeros.bin"), "wb") as handle:
        handle.write(bytes(megabytes * 2**20 // 2))
    with open(os.path.join(root, "run.sh"), "w") as handle:
        handle.write("#!/bin/sh\necho restored\n")
    os.chmod(os.path.join(root, "run.sh"), 0o755)
    os.symlink("docs/page-00.txt", os.path.join(root, "latest.txt"))
    os.link(os.path.join(root, "run.sh"), os.path.join(root, "run-again.sh"))


if __name__ == "__main__":
    make_sample_tree(sys.argv[1])
    print(f"sample tree written to {sys.argv[1]}")
