"""A real S3 API server on 127.0.0.1 (moto's threaded server, port 0) for the remote tests.

Each test gets its own bucket and the environment users set for an S3-compatible store
(``AWS_ENDPOINT_URL``, keys, region); nothing of ours is mocked.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from aiohttp import web
from moto.server import ThreadedMotoServer

_bucket_numbers = itertools.count()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_client(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> object:
    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "stc-test-key",
        "AWS_SECRET_ACCESS_KEY": "stc-test-secret",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3_client: object) -> str:
    """A new, empty bucket."""
    name = f"stc-test-{next(_bucket_numbers)}"
    s3_client.create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


@pytest.fixture
def web_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served read-only by a real web server (aiohttp's static files: HEAD and Range
    requests, as a CDN answers them) on 127.0.0.1; yields the folder and its URL."""
    folder = tmp_path / "www"
    folder.mkdir()
    loop = asyncio.new_event_loop()
    started: concurrent.futures.Future[tuple[web.AppRunner, str]] = concurrent.futures.Future()

    async def start() -> None:
        app = web.Application()
        app.router.add_static("/", folder)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        started.set_result((runner, f"http://{host}:{port}"))

    thread = threading.Thread(target=loop.run_forever, name="web-folder", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    runner, url = started.result()
    yield folder, url
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=30)
    loop.close()
