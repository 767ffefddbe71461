"""The stc command: every command works, every error is one line with its own exit code."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import streaming_tar_compressor as stc
from streaming_tar_compressor.cli.main import main, normalize_prefix, parse_size
from tests.helpers import snapshot, tool


def stc_run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streaming_tar_compressor", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("stc: error:"), done.stderr
    assert text in lines[-1]
    assert "Traceback" not in done.stderr


@pytest.fixture
def packed(make_tree, tmp_path):
    tree = make_tree()
    prefix = tmp_path / "arc" / "b"
    code = main(
        ["pack", str(tree), "-o", str(prefix), "--chunk-size", "20K", "--block-size", "64K", "-q"]
    )
    assert code == 0
    return tree, prefix


def test_help_documents_every_command_and_option():
    done = stc_run("--help")
    assert done.returncode == 0
    for command in ("pack", "unpack", "verify", "list", "info"):
        assert command in done.stdout
    pack_help = stc_run("pack", "--help").stdout
    for option in (
        "--output",
        "--compression",
        "--level",
        "--chunk-size",
        "--block-size",
        "--workers",
        "--force",
        "--quiet",
        "--json",
    ):
        assert option in pack_help
    unpack_help = stc_run("unpack", "--help").stdout
    for option in ("--directory", "--no-verify", "--same-owner", "--compression"):
        assert option in unpack_help
    assert "--deep" in stc_run("verify", "--help").stdout


def test_pack_unpack_round_trip_through_the_cli(packed, tmp_path, capsys):
    tree, prefix = packed
    assert main(["unpack", str(prefix), "-C", str(tmp_path / "out")]) == 0
    assert "every chunk verified" in capsys.readouterr().out
    assert snapshot(tmp_path / "out" / tree.relative_to("/")) == snapshot(tree)


def test_json_results(packed, capsys):
    _, prefix = packed
    capsys.readouterr()
    assert main(["verify", str(prefix), "--json", "--deep"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["problems"] == []
    assert report["members_checked"] > 5
    assert main(["info", str(prefix), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["total_chunks"] == len(info["chunks"]) > 1


def test_list_matches_gnu_tar(packed, capsys):
    tar = tool("tar")
    _, prefix = packed
    capsys.readouterr()
    assert main(["list", str(prefix)]) == 0
    ours = capsys.readouterr().out.splitlines()
    stream = b"".join(p.read_bytes() for p in sorted(prefix.parent.glob("b.part*")))
    theirs = subprocess.run([tar, "-tzvf", "-"], input=stream, capture_output=True, check=True)
    gnu = theirs.stdout.decode().splitlines()
    assert len(ours) == len(gnu)
    for mine, gnus in zip(ours, gnu, strict=True):
        assert mine.split()[0] == gnus.split()[0]  # mode string
        assert mine.split()[-1] == gnus.split()[-1]  # name (or link target)


def test_info_shows_the_restore_command(packed, capsys):
    _, prefix = packed
    capsys.readouterr()
    assert main(["info", str(prefix) + ".manifest.json"]) == 0
    out = capsys.readouterr().out
    assert "cat b.part* | tar -z -xf -" in out
    assert "sha256sum -c b.sha256" in out


def test_verify_reports_every_damaged_chunk_in_one_report(packed):
    _, prefix = packed
    parts = sorted(prefix.parent.glob("b.part*"))
    assert len(parts) >= 4
    flipped, missing, truncated = parts[0], parts[1], parts[2]
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    missing.unlink()
    truncated.write_bytes(truncated.read_bytes()[:-10])
    (prefix.parent / "b.part9999").write_bytes(b"stray")
    done = stc_run("verify", str(prefix))
    assert done.returncode == 6
    for name, word in (
        (flipped, "corrupt"),
        (missing, "missing"),
        (truncated, "short"),
        (prefix.parent / "b.part9999", "extra"),
    ):
        assert f"{name.name}: {word}" in done.stderr
    assert "4 problems" in done.stderr


def test_unpack_of_a_corrupt_chunk_leaves_no_complete_looking_file(make_tree, tmp_path):
    tree = make_tree({f"f{i:02d}.txt": os.urandom(3000) for i in range(30)}, links=False)
    prefix = tmp_path / "b"
    stc.pack([tree], prefix, compression="none", chunk_size=20_000)
    victim = tmp_path / "b.part0002"
    data = bytearray(victim.read_bytes())
    data[-100] ^= 0x01
    victim.write_bytes(bytes(data))
    done = stc_run("unpack", str(prefix), "-C", str(tmp_path / "out"))
    assert_one_line_error(done, 6, "b.part0002 is damaged")
    restored = tmp_path / "out" / tree.relative_to("/")
    # Checked block by block before decoding, a bad block stops the unpack before any of it
    # is written: here the stream is one block, so not even the folder is made.
    names = sorted(p.name for p in restored.iterdir()) if restored.exists() else []
    assert not any(n.endswith(".tmp") for n in names)
    for name in names:
        if name.startswith("f"):
            assert (restored / name).read_bytes() == (tree / name).read_bytes()
    assert len([n for n in names if n.startswith("f")]) < 30


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["pack", "/does/not/exist", "-o", "{tmp}/x"], 3, "/does/not/exist"),
        (["pack", "{tree}", "-o", "{tmp}/x", "-c", "gzip", "-l", "42"], 2, "level"),
        (["pack", "{tree}", "-o", "{tmp}/x", "--chunk-size", "lots"], 2, "size"),
        (["unpack", "{tmp}/nothing", "-C", "{tmp}/o"], 5, "missing"),
        (["verify", "{tmp}/nothing"], 4, "manifest"),
        (["unpack", "{prefix}", "-C", "{tmp}/o", "-c", "xz"], 9, "not xz"),
        (["pack", "{tree}", "-o", "{prefix}"], 10, "--force"),
    ],
)
def test_errors_are_one_line_with_distinct_exit_codes(packed, tmp_path, args, code, text):
    tree, prefix = packed
    values = {"tmp": str(tmp_path), "tree": str(tree), "prefix": str(prefix)}
    done = stc_run(*[a.format(**values) for a in args])
    if args[-1] == "lots":  # argparse's own usage error: usage line, then the message
        assert done.returncode == 2 and "cannot read 'lots' as a size" in done.stderr
        assert "Traceback" not in done.stderr
        return
    assert_one_line_error(done, code, text)


def test_bad_manifest_is_a_clear_error(packed):
    _, prefix = packed
    Path(str(prefix) + ".manifest.json").write_text("{not json")
    assert_one_line_error(stc_run("unpack", str(prefix), "-C", "/tmp/never"), 4, "not valid JSON")


def test_force_replaces_an_archive(packed, make_tree):
    _, prefix = packed
    other = make_tree({"only.txt": b"x"}, links=False)
    assert main(["pack", str(other), "-o", str(prefix), "--force", "-q"]) == 0
    assert len(list(prefix.parent.glob("b.part*"))) == 1
    assert [m.name.rsplit("/", 1)[-1] for m in stc.list_members(prefix)][-2:] == [
        "only.txt",
        "private.txt",
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100", 100),
        ("1K", 1024),
        ("50M", 50 * 2**20),
        ("1G", 2**30),
        ("2MiB", 2 * 2**20),
        ("1MB", 10**6),
        ("1.5k", 1536),
        ("3m", 3 * 2**20),
    ],
)
def test_parse_size_follows_split(text, value):
    assert parse_size(text) == value


@given(st.text(max_size=8))
def test_parse_size_accepts_or_refuses_cleanly(text):
    with contextlib.suppress(stc.UsageError):
        assert parse_size(text) >= 1


def test_prefix_may_be_given_as_a_part_or_the_manifest():
    assert normalize_prefix("out/b.part0007") == "out/b"
    assert normalize_prefix("out/b.manifest.json") == "out/b"
    assert normalize_prefix("out/b") == "out/b"


def test_list_prints_names_that_are_not_utf8_as_their_bytes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "caf\xe9".encode("latin-1").decode("utf-8", "surrogateescape")).write_bytes(b"x")
    stc.pack([src], tmp_path / "b")
    done = subprocess.run(
        [sys.executable, "-m", "streaming_tar_compressor", "list", str(tmp_path / "b")],
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"},
    )
    assert done.returncode == 0, done.stderr
    assert b"caf\xe9" in done.stdout
