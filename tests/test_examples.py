"""Every example runs as a real script and restores the sample tree exactly.

The examples are documentation; these tests keep them true. Each one packs a small sample
tree (text, binary, a symlink, a hardlink, an empty folder, a non-ASCII name), and the tree it
restores must equal the source in kind, mode, mtime, bytes, link targets and hardlinks.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from aiohttp import web

from streaming_tar_compressor import Manifest, StreamingTarCompressor
from tests.helpers import inode_groups, snapshot

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def load_example(name: str) -> ModuleType:
    """Imports ``examples/NAME.py``, which is a script folder rather than a package."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run(script: str, *args: object, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """Runs an example as a user would, from the repository root."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == expect, f"{script} exited {done.returncode}:\n{done.stderr}"
    return done


def assert_restored(destination: Path, source: Path) -> None:
    """The tree under ``destination`` (at the source's path without its leading /) is a copy."""
    restored = destination / source.relative_to("/")
    assert snapshot(restored) == snapshot(source)
    assert inode_groups(restored) == inode_groups(source)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("examples") / "sample"
    load_example("make_sample_tree").make_sample_tree(str(root), megabytes=2)
    return root


@pytest.fixture
def chunk_server_url() -> Iterator[str]:
    """The example's ``make_app()`` served on a free port by a loop in its own thread."""
    app = load_example("chunk_server").make_app()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner, runner.addresses[0][1]

    runner, port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_basic_compress_then_decompress(sample, tmp_path, codec):
    prefix = tmp_path / "chunks" / "sample"
    out = run("basic_compress.py", sample, "-o", prefix, "-c", codec, "--chunk-size", 300_000)
    parts = sorted(prefix.parent.glob("sample.part*"))
    match = re.match(r"(\d+) chunk\(s\), (\d+) bytes", out.stdout)
    assert match, out.stdout
    assert int(match[1]) == len(parts) > 1
    assert int(match[2]) == sum(part.stat().st_size for part in parts)
    assert Manifest.from_json(Path(f"{prefix}.manifest.json").read_text()).compression == codec

    out = run("basic_decompress.py", prefix, "-C", tmp_path / "restored")
    assert "every chunk verified" in out.stdout
    assert_restored(tmp_path / "restored", sample)


def test_custom_streaming_writes_chunks_its_own_way_and_a_matching_manifest(sample, tmp_path):
    out_dir = tmp_path / "out"
    out = run("custom_streaming.py", sample, "-o", out_dir)
    manifest = Manifest.from_json((out_dir / "manifest.json").read_text())
    files = sorted(out_dir.glob("chunk-*.bin"))
    assert [f.name for f in files] == [f"chunk-{c.index:05d}.bin" for c in manifest.chunks]
    assert len(files) > 1
    digests = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    assert digests == [c.checksum for c in manifest.chunks]
    assert re.findall(r"sha256 ([0-9a-f]{64})", out.stdout) == digests

    chunks = ((i, f.read_bytes()) for i, f in enumerate(files))
    result = StreamingTarCompressor().unpack_chunks(
        chunks, tmp_path / "restored", manifest=out_dir / "manifest.json"
    )
    assert result.verified
    assert_restored(tmp_path / "restored", sample)


def test_http_upload_then_download_through_the_chunk_server(sample, tmp_path, chunk_server_url):
    url = chunk_server_url
    assert http_status(f"{url}/manifest") == 404  # an empty store
    run("http_transfer.py", "upload", sample, "--url", url, "-c", "zstd", "--chunk-size", 400_000)

    with urllib.request.urlopen(f"{url}/manifest", timeout=10) as response:
        manifest = Manifest.from_json(response.read())
    last = manifest.total_chunks - 1
    assert last > 0
    with urllib.request.urlopen(f"{url}/chunks/{last}", timeout=10) as response:
        assert hashlib.sha256(response.read()).hexdigest() == manifest.chunks[last].checksum
    assert http_status(f"{url}/chunks/{last + 1}") == 404

    out = run("http_transfer.py", "download", "--url", url, "-C", tmp_path / "restored")
    assert "every chunk verified" in out.stdout
    assert_restored(tmp_path / "restored", sample)


def test_chunk_server_script_prints_its_url_and_stops_on_ctrl_c():
    # A child inherits an ignored SIGINT, and a test run started in the background (`make test
    # &`, CI scripts) ignores it: start the server as a terminal's foreground job would be.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        server = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "chunk_server.py")],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        assert server.stdout is not None
        url = re.search(r"http://127\.0\.0\.1:\d+", server.stdout.readline())
        assert url, "no URL printed"
        assert http_status(f"{url[0]}/chunks/0") == 404
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=10) == 0
    finally:
        server.kill()
        server.communicate()


def test_progress_tracker_counts_the_same_members_and_bytes_both_ways(sample, tmp_path):
    prefix = tmp_path / "sample"
    out = run("progress_tracker.py", sample, "-o", prefix, "--every", 5)
    counts = re.findall(r"^(packed|unpacked) (\d+) members, (\d+) bytes", out.stdout, re.M)
    assert [label for label, _, _ in counts] == ["packed", "unpacked"]
    (_, packed, packed_bytes), (_, unpacked, unpacked_bytes) = counts
    members = len(snapshot(sample)) + 1  # and the sample folder itself
    assert int(packed) == int(unpacked) == members
    file_bytes = {  # a hardlink's data is stored once
        st.st_ino: st.st_size
        for st in (p.lstat() for p in sample.rglob("*"))
        if stat.S_ISREG(st.st_mode)
    }
    assert int(packed_bytes) == int(unpacked_bytes) == sum(file_bytes.values())
    assert len(re.findall(r"^  packed: ", out.stdout, re.M)) == members // 5
    assert_restored(Path(f"{prefix}-restored"), sample)


def test_transform_pipeline_stores_transformed_chunks_and_restores_verified(sample, tmp_path):
    staged = tmp_path / "staged"
    out = run("transform_pipeline.py", sample, "-o", staged, "--restore-to", tmp_path / "back")
    assert "every chunk verified" in out.stdout
    manifest = Manifest.from_json((staged / "manifest.json").read_text())
    stored = [(staged / f"chunk-{c.index:05d}.xor").read_bytes() for c in manifest.chunks]
    assert [len(data) for data in stored] == [c.size for c in manifest.chunks]
    for data, chunk in zip(stored, manifest.chunks, strict=True):
        assert hashlib.sha256(data).hexdigest() != chunk.checksum  # really transformed
    assert_restored(tmp_path / "back", sample)


def test_backup_system_create_list_restore(sample, tmp_path):
    store = tmp_path / "store"
    run("backup_system.py", "create", "full", sample, "--store", store)
    run("backup_system.py", "create", "docs", sample / "docs", "--store", store)
    assert (store / "full" / "backup.part0000").is_file()
    assert Manifest.from_json((store / "full" / "backup.manifest.json").read_text()).chunk_size == (
        100 * 2**20
    )

    listing = run("backup_system.py", "list", "--store", store).stdout.splitlines()
    assert sorted(line.split()[0] for line in listing) == ["docs", "full"]
    assert all(re.search(r"\d{4}-\d\d-\d\d.* MiB -> .* MiB$", line) for line in listing)

    again = run("backup_system.py", "create", "full", sample, "--store", store, expect=10)
    assert again.stderr.startswith("error: ")
    run("backup_system.py", "create", "../escape", sample, "--store", store, expect=2)
    assert not (tmp_path / "escape").exists()

    out = run("backup_system.py", "restore", "full", "--store", store, "-C", tmp_path / "back")
    assert f"{len(snapshot(sample)) + 1} member(s)" in out.stdout
    assert_restored(tmp_path / "back", sample)
    assert sorted(os.listdir(store)) == ["docs", "full"]  # the refused names left nothing
