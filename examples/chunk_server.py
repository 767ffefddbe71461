"""A tiny in-memory chunk store over HTTP, the other end of http_transfer.py.

``PUT /chunks/{index}`` stores the body, ``GET /chunks/{index}`` returns it (404 when there is
none); ``PUT /manifest`` and ``GET /manifest`` do the same for the manifest JSON. Everything is
lost when the server stops: it stands in for object storage in the examples and their tests.

Run:  python examples/chunk_server.py --port 8080     (serves until Ctrl-C)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Store:
    chunks: dict[int, bytes] = field(default_factory=dict)
    manifest: bytes | None = None


STORE = web.AppKey("store", Store)


async def put_chunk(request: web.Request) -> web.Response:
    request.app[STORE].chunks[int(request.match_info["index"])] = await request.read()
    return web.Response(status=201)


async def get_chunk(request: web.Request) -> web.Response:
    data = request.app[STORE].chunks.get(int(request.match_info["index"]))
    if data is None:
        raise web.HTTPNotFound()
    return web.Response(body=data, content_type="application/octet-stream")


async def put_manifest(request: web.Request) -> web.Response:
    request.app[STORE].manifest = await request.read()
    return web.Response(status=201)


async def get_manifest(request: web.Request) -> web.Response:
    if request.app[STORE].manifest is None:
        raise web.HTTPNotFound()
    return web.Response(body=request.app[STORE].manifest, content_type="application/json")


def make_app(max_chunk_size: int = 256 * 2**20) -> web.Application:
    """The application; ``max_chunk_size`` lifts aiohttp's 1 MiB default limit on bodies."""
    app = web.Application(client_max_size=max_chunk_size)
    app[STORE] = Store()
    app.router.add_put(r"/chunks/{index:\d+}", put_chunk)
    app.router.add_get(r"/chunks/{index:\d+}", get_chunk)
    app.router.add_put("/manifest", put_manifest)
    app.router.add_get("/manifest", get_manifest)
    return app


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)

    runner = web.AppRunner(make_app())
    await runner.setup()
    try:
        await web.TCPSite(runner, args.host, args.port).start()
        host, port = runner.addresses[0][:2]
        print(f"serving chunks at http://{host}:{port}  (Ctrl-C stops)", flush=True)
        await asyncio.Event().wait()  # forever
    finally:
        await runner.cleanup()
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the way to stop it
        raise SystemExit(asyncio.run(main()))
