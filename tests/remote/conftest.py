"""A real S3 API server on 127.0.0.1 (moto's threaded server, port 0) for the remote tests,
and Azure's blob emulator (azurite, from npm: `make test` installs it) for the Azure ones.

Each test gets its own bucket or container and the environment users set for such a store
(``AWS_ENDPOINT_URL``, keys, region; ``AZURE_STORAGE_ENDPOINT``, account, key); nothing of ours
is mocked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import logging
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

import boto3
import pytest
from aiohttp import ClientSession, web
from moto.server import ThreadedMotoServer

from tests.helpers import unavailable

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


# azurite's one account and its documented key (public: every Azure storage emulator has it).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE = Path(__file__).parents[2] / ".tools/azurite/node_modules/.bin/azurite-blob"
# What else would choose the Azure credentials or endpoint ahead of the test's.
_AZURE_VARIABLES = (
    "AZURE_ENDPOINT",
    "AZURE_STORAGE_USE_EMULATOR",
    "AZURITE_BLOB_STORAGE_URL",
    "AZURE_STORAGE_TOKEN",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CREDENTIAL_TYPE",
    "AZURE_SKIP_SIGNATURE",
    "AZURE_USE_AZURE_CLI",
)


@pytest.fixture(scope="session")
def azurite_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """azurite's blob service on 127.0.0.1 (a port it picks), its data in memory; yields the
    server's URL. Skips when azurite is not installed, fails so under CI=true."""
    program = str(AZURITE) if AZURITE.exists() else shutil.which("azurite-blob")
    if program is None:
        unavailable(
            "azurite-blob is not installed (`make test` puts it in .tools/azurite when npm is "
            "there): the Azure tests need it; `make test` installs it in CI"
        )
    log = tmp_path_factory.mktemp("azurite") / "azurite.log"
    options = ["--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence"]
    # Any API version obstore sends; no telemetry (no network here, none wanted); no access log.
    options += ["--skipApiVersionCheck", "--disableTelemetry", "--silent"]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [program, *options], stdout=out, stderr=subprocess.STDOUT, cwd=log.parent
        )
    try:
        yield _listening_url(server, log)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _listening_url(server: subprocess.Popen[bytes], log: Path) -> str:
    """The URL azurite prints once it listens (port 0 makes it pick one)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(rb"successfully listens on (http://\S+)", log.read_bytes())
        if found:
            return found.group(1).decode()
        if server.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"azurite did not start: {log.read_text(errors='replace')}")


def azurite_request(endpoint: str, method: str, path: str, query: str = "") -> dict[str, str]:
    """One bodiless request to azurite signed with the account key (Shared Key), for what
    obstore has no call for (creating a container) or hides (the raw metadata headers);
    returns the answer's headers, names in lower case. ``path`` is ``container[/blob]``."""
    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
    canonical = "".join(f"{name}:{value}\n" for name, value in sorted(headers.items()))
    # The account is in the path (azurite's URLs) and once more before it in the resource.
    resource = f"/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{path}"
    if query:
        resource += "".join(f"\n{p.replace('=', ':', 1)}" for p in sorted(query.split("&")))
    # VERB, then eleven standard headers (all empty here), then the x-ms- ones and the resource.
    text = f"{method}\n" + "\n" * 11 + canonical + resource
    key = base64.b64decode(AZURITE_KEY)
    signature = base64.b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest())
    headers["Authorization"] = f"SharedKey {AZURITE_ACCOUNT}:{signature.decode()}"
    url = f"{endpoint}/{path}" + (f"?{query}" if query else "")
    request = urllib.request.Request(url, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return {name.lower(): value for name, value in answer.headers.items()}


@pytest.fixture
def azure_endpoint(azurite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The account's endpoint, set in the environment as a user sets it for azurite."""
    endpoint = f"{azurite_url}/{AZURITE_ACCOUNT}"
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)
    monkeypatch.setenv("AZURE_STORAGE_ENDPOINT", endpoint)
    for name in _AZURE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return endpoint


@pytest.fixture
def container(azure_endpoint: str) -> str:
    """A new, empty container."""
    name = f"stc-test-{next(_bucket_numbers)}"
    azurite_request(azure_endpoint, "PUT", name, "restype=container")
    return name


@pytest.fixture
def web_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served read-only by a real web server (aiohttp's static files: HEAD and Range
    requests, as a CDN answers them) on 127.0.0.1; yields the folder and its URL."""
    folder = tmp_path / "www"
    folder.mkdir()
    app = web.Application()
    app.router.add_static("/", folder)
    for url in serve_in_thread(app):
        yield folder, url


def serve_in_thread(app: web.Application) -> Iterator[str]:
    """Runs an aiohttp application on 127.0.0.1, port 0, in a thread; yields its URL."""
    loop = asyncio.new_event_loop()

    async def start() -> tuple[web.AppRunner, str]:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        return runner, f"http://{host}:{port}"

    thread = threading.Thread(target=loop.run_forever, name="test-server", daemon=True)
    thread.start()
    runner, url = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    try:
        yield url
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


@dataclass
class Fault:
    """Do ``kind`` to the next ``times`` requests of ``method`` whose path contains ``key``:
    ``slowdown`` (503 SlowDown), ``forbidden`` (403 AccessDenied), ``full`` (507 with
    MinIO's XMinioStorageFull, what a MinIO out of disk answers), ``quota`` (Ceph's 403
    QuotaExceeded), ``stored-then-dropped``
    (forwarded, then the connection closes with no answer), ``cut`` (half the body, then the
    connection closes), ``flip`` (one bit of the body flipped)."""

    method: str
    key: str
    kind: str
    times: int = 1
    hits: int = 0


@dataclass
class FaultProxy:
    """A proxy in front of the S3 server that injects the faults a real network and store
    produce; ``url`` is the endpoint to give stc."""

    url: str
    faults: list[Fault] = field(default_factory=list)
    access_keys: set[str] = field(default_factory=set)  # the key ids requests were signed with

    def add(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def take(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.method == method and fault.key in path and fault.hits < fault.times:
                fault.hits += 1
                return fault
        return None


_S3_ERROR = (
    "<?xml version='1.0' encoding='UTF-8'?><Error><Code>{}</Code><Message>{}</Message></Error>"
)
_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
_ERROR_ANSWERS = {
    "slowdown": (503, "SlowDown"),
    "forbidden": (403, "AccessDenied"),
    "full": (507, "XMinioStorageFull"),
    "quota": (403, "QuotaExceeded"),
}


@pytest.fixture
def fault_proxy(
    s3_endpoint: str, s3_client: object, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FaultProxy]:
    """stc talks to the S3 server through this proxy (AWS_ENDPOINT_URL points at it)."""
    proxy = FaultProxy(url="")
    session: list[ClientSession] = []

    async def forward(request: web.Request) -> web.StreamResponse:
        if not session:
            session.append(ClientSession(auto_decompress=False))
        signed = re.search(r"Credential=([^/]+)/", request.headers.get("Authorization", ""))
        if signed:
            proxy.access_keys.add(signed.group(1))
        fault = proxy.take(request.method, request.path)
        if fault is not None and fault.kind in _ERROR_ANSWERS:
            status, code = _ERROR_ANSWERS[fault.kind]
            return web.Response(
                status=status,
                text=_S3_ERROR.format(code, fault.kind),
                content_type="application/xml",
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with session[0].request(
            request.method,
            s3_endpoint + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as upstream:
            body = await upstream.read()
            answer_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP
            }
            status = upstream.status
        if fault is not None and fault.kind == "stored-then-dropped":
            assert request.transport is not None
            request.transport.close()
            return web.Response()  # never sent: the connection is gone
        if fault is not None and fault.kind == "flip" and body:
            body = bytes([body[0] ^ 1]) + body[1:]
        if fault is not None and fault.kind == "cut" and body:
            response = web.StreamResponse(status=status, headers=answer_headers)
            response.content_length = len(body)
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        if request.method == "HEAD":  # the object's size is in the length of no body
            response = web.StreamResponse(status=status, headers=answer_headers)
            response.content_length = int(upstream.headers.get("Content-Length", 0))
            await response.prepare(request)
            return response
        return web.Response(status=status, body=body, headers=answer_headers)

    async def close_session(_: web.Application) -> None:
        if session:
            await session[0].close()

    app = web.Application(client_max_size=256 * 2**20)
    app.router.add_route("*", "/{tail:.*}", forward)
    app.on_cleanup.append(close_session)
    for url in serve_in_thread(app):
        proxy.url = url
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        yield proxy
