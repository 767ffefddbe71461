"""Pack to and unpack from an S3 API server over a link of fixed speed: does stc overlap the
compression with the upload (and the download with the extraction)?

moto's S3 server runs in its own process; a proxy in this process limits the link to
``--rate`` MB/s in each direction, shared by all connections, as a network link would. Rows:
stc to a local folder, the plain upload of the same chunks (two PUTs in flight), stc straight
to the store; and the reverse. The goal: the remote run takes at most 1.15x the longer of the
two it overlaps. Every row runs ``--rounds`` times, the rows in turn, and the ratios compare
medians: one run of each, on this VM, passed or failed with its speed of the moment.

    make bench-remote                              # 300 MiB mixed corpus, zstd, 40 MB/s
    .venv/bin/python benchmarks/remote_bench.py --size-mib 100 --rate 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import timed  # noqa: E402  (a sibling script, not a package)

MIB = 2**20
GOAL = 1.15
PIECE = 64 * 1024  # bytes the shaper lets through at a time


class Link:
    """Lets bytes through at ``rate`` bytes per second in each direction. Connections take
    turns in steps of STEP bytes (a token bucket), so a small request is not queued behind a
    big upload's buffered megabytes: about how TCP flows share a real link. The bucket holds
    up to BURST: what a socket's buffer lets a wire send while its sender waits for a CPU.
    With 64 KiB (1.6 ms of the link) every late wake-up of this thread, which shares the two
    cores with the runs it times, lost link time: the plain upload of 132 MiB took 3.81-3.89 s
    where the link allows 3.46 s; with 1 MiB (26 ms), 3.51-3.57 s."""

    STEP = 16 * 1024
    BURST = 1024 * 1024

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = {"up": 0.0, "down": 0.0}
        self._last = {"up": 0.0, "down": 0.0}

    async def through(self, direction: str, size: int) -> None:
        loop = asyncio.get_running_loop()
        while size > 0:
            step = min(size, self.STEP)
            now = loop.time()
            refill = (now - self._last[direction]) * self.rate
            self._tokens[direction] = min(self.BURST, self._tokens[direction] + refill)
            self._last[direction] = now
            if self._tokens[direction] >= step:
                self._tokens[direction] -= step
                size -= step
            else:
                await asyncio.sleep((step - self._tokens[direction]) / self.rate)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link, way: str):
    try:
        while data := await reader.read(PIECE):
            await link.through(way, len(data))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def start_link(upstream_port: int, rate: float) -> int:
    """A TCP proxy to 127.0.0.1:upstream_port limited to ``rate`` bytes/s; returns its port."""
    link = Link(rate)
    ready: list[int] = []
    started = threading.Event()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(
            _pump(reader, up_writer, link, "up"), _pump(up_reader, writer, link, "down")
        )

    async def serve() -> None:
        server = await asyncio.start_server(connection, "127.0.0.1", 0)
        ready.append(server.sockets[0].getsockname()[1])
        started.set()
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True, name="link").start()
    started.wait(30)
    return ready[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


TRANSFER = """
import os, sys, pathlib, obstore
from concurrent.futures import ThreadPoolExecutor
from obstore.store import from_url
endpoint = os.environ["AWS_ENDPOINT_URL"]
store = from_url(sys.argv[2], endpoint=endpoint, client_options={"allow_http": True})
if sys.argv[1] == "upload":
    files = sorted(pathlib.Path(sys.argv[3]).iterdir())
    work = lambda f: obstore.put(store, f.name, f.read_bytes(), use_multipart=False)
else:
    files = [meta["path"] for meta in obstore.list(store).collect()]
    work = lambda key: len(bytes(obstore.get(store, key).bytes()))
with ThreadPoolExecutor(2) as pool:
    list(pool.map(work, files))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=300, help="mixed corpus size")
    parser.add_argument("--rate", type=float, default=40.0, help="link speed, MB/s each way")
    parser.add_argument("--codec", default="zstd")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the rows (medians)")
    parser.add_argument("--json", type=Path, default=Path("/tmp/stc-bench-remote.json"))
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    stc = shlex.quote(str(Path(sys.executable).with_name("stc")))
    python = shlex.quote(sys.executable)
    shm = Path("/dev/shm")  # tmpfs keeps the disk out of the timings when it has room
    room = shm.is_dir() and shutil.disk_usage(shm).free > 6 * args.size_mib * MIB
    work = Path(tempfile.mkdtemp(prefix="stc-remote-bench-", dir=shm if room else None))
    print(f"work dir {work}")
    moto_port = free_port()
    moto = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("moto_server")),
            "-H",
            "127.0.0.1",
            "-p",
            str(moto_port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        subprocess.run(
            [
                sys.executable,
                str(HERE / "corpus.py"),
                "mixed",
                str(work / "corpus"),
                "--size-mib",
                str(args.size_mib),
            ],
            check=True,
            capture_output=True,
        )
        link_port = start_link(moto_port, args.rate * 1e6)
        os.environ.update(
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{link_port}",
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_REGION="us-east-1",
        )
        _create_bucket(moto_port)
        rows = _measure(work, stc, python, args, lambda prefix: _empty(moto_port, prefix))
    finally:
        moto.terminate()
        moto.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    _report(rows, args)


def _empty(port: int, prefix: str) -> None:
    """Delete a round's archive from the server (straight, not through the link), so that
    every round meets a server holding the same."""
    import boto3

    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix=prefix):
        for item in page.get("Contents", []):
            client.delete_object(Bucket="bench", Key=item["Key"])


def _create_bucket(port: int) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
    for _ in range(50):  # the server takes a moment to listen
        try:
            client.create_bucket(Bucket="bench")
            return
        except Exception:  # connection refused while it starts
            time.sleep(0.2)
    raise SystemExit("the moto server did not start")


def _commands(stc: str, python: str, args: argparse.Namespace, round_: int) -> dict[str, str]:
    """The timed rows, in order; each round packs to a prefix of its own on the store."""
    codec = f"-c {args.codec}"
    transfer = shlex.quote(TRANSFER)
    return {
        "pack to a folder": f"{stc} pack corpus -o local/a {codec} --chunk-size auto -q",
        "upload of its chunks": f"{python} -c {transfer} upload s3://bench/plain local",
        "pack to S3": f"{stc} pack corpus -o s3://bench/stc{round_}/a {codec} -q",
        "unpack from a folder": f"{stc} unpack local/a -C out1 -q",
        "download of its chunks": f"{python} -c {transfer} download s3://bench/plain",
        "unpack from S3": f"{stc} unpack s3://bench/stc{round_}/a -C out2 -q",
        # No network: the folder's chunks read no faster than the link brings them.
        "unpack from a folder at the link's rate": (
            f"{python} {shlex.quote(str(HERE / 'throttled_unpack.py'))} {args.rate:g} local/a "
            "-C out3 -q"
        ),
    }


def _measure(
    work: Path, stc: str, python: str, args: argparse.Namespace, empty: Callable[[str], None]
) -> dict[str, dict]:
    """Every row ``args.rounds`` times, the rows in turn (a slow stretch of the VM then
    touches each row alike); each row's median is what the ratios compare. A round's
    outputs are deleted once it is over: the next starts as the first did."""
    runs: dict[str, list[tuple[float, float, int]]] = {}
    for round_ in range(args.rounds):
        shutil.rmtree(work / "local", ignore_errors=True)  # the last round's stays, measured
        commands = _commands(stc, python, args, round_)
        for name, command in commands.items():
            seconds, cpu, rss_kib, code = timed(command, work)
            if code != 0:
                raise SystemExit(f"{name} failed ({code}): {command}")
            runs.setdefault(name, []).append((seconds, cpu, rss_kib))
            mib = rss_kib / 1024
            print(f"{name:24} {seconds:7.2f} s  CPU {cpu:6.2f} s  peak RSS {mib:4.0f} MiB")
        for name in ("out1", "out2", "out3"):
            shutil.rmtree(work / name, ignore_errors=True)
        empty(f"stc{round_}/")
    rows: dict[str, dict] = {
        name: {
            "seconds": round(statistics.median(m[0] for m in measured), 2),
            "runs": [round(m[0], 2) for m in measured],
            "cpu_seconds": round(statistics.median(m[1] for m in measured), 2),
            "rss_mib": round(max(m[2] for m in measured) / 1024),
            "command": commands[name],  # the last round's
        }
        for name, measured in runs.items()
    }
    packed = sum(p.stat().st_size for p in (work / "local").iterdir() if ".part" in p.name)
    rows["archive"] = {"bytes": packed, "chunks": len(list((work / "local").glob("a.part*")))}
    return rows


def _report(rows: dict[str, dict], args: argparse.Namespace) -> None:
    pack = rows["pack to S3"]["seconds"] / max(
        rows["pack to a folder"]["seconds"], rows["upload of its chunks"]["seconds"]
    )
    unpack = rows["unpack from S3"]["seconds"] / max(
        rows["unpack from a folder"]["seconds"], rows["download of its chunks"]["seconds"]
    )
    at_link_rate = (
        rows["unpack from S3"]["seconds"]
        / rows["unpack from a folder at the link's rate"]["seconds"]
    )
    archive = rows["archive"]
    print(
        f"\n{args.size_mib} MiB mixed corpus, {args.codec}, {archive['bytes'] / MIB:.0f} MiB in "
        f"{archive['chunks']} chunks, link {args.rate:g} MB/s each way; medians of "
        f"{args.rounds} round(s)"
    )
    for label, value in (("pack", pack), ("unpack", unpack)):
        verdict = "PASS" if value <= GOAL else "FAIL"
        print(f"{label} with S3 / the longer of its parts: {value:.2f}x (goal <= {GOAL}) {verdict}")
    print(f"unpack with S3 / unpack from a folder read at the link's rate: {at_link_rate:.2f}x")
    report = {"settings": vars(args) | {"json": str(args.json)}, "rows": rows,
              "ratios": {"pack": round(pack, 3), "unpack": round(unpack, 3),
                         "unpack_vs_link_rate": round(at_link_rate, 3)}}  # fmt: skip
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"JSON: {args.json}")


if __name__ == "__main__":
    main()
