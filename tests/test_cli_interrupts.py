"""After Ctrl-C or a failure, the CLI says exactly how to go on, and shows only what it knows.

Interruptions are raised at chosen calls (after a checkpoint, after a journal record), so the
point where a run stops never depends on thread timing.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import streaming_tar_compressor as stc
from streaming_tar_compressor.cli.main import main, parse_size
from streaming_tar_compressor.cli.render import ProgressBar
from streaming_tar_compressor.cli.resume_hints import exact_size
from streaming_tar_compressor.fs.journal import UnpackJournal
from streaming_tar_compressor.storage.local import LocalChunkSink
from tests.helpers import interrupt_at_record, random_files, snapshot

PACK_OPTIONS = ["-c", "zstd", "-l", "5", "--chunk-size", "16K", "--block-size", "8K"]


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """Random files: about twenty 16 KiB chunks."""
    random_files(tmp_path / "src" / "d", seed=3, count=30, size=10_000)
    return tmp_path / "src"


@pytest.fixture
def stop_at_checkpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Ctrl-C just after the pack's third checkpoint is on disk."""
    write_checkpoint = LocalChunkSink.write_checkpoint
    written = [0]

    def interrupted(sink: LocalChunkSink, manifest: Any) -> None:
        write_checkpoint(sink, manifest)
        written[0] += 1
        if written[0] == 3:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(LocalChunkSink, "write_checkpoint", interrupted)
        yield


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def resume_command(err: str) -> list[str]:
    """The command the one error line ends with, as argv for ``main``."""
    assert err.count("\n") == 1, err
    words = shlex.split(err.split("; to go on from there: ", 1)[1])
    assert words[:1] == ["stc"], words
    return words[1:]


def test_ctrl_c_during_pack_prints_the_exact_resume_command(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], stop_at_checkpoint: None
) -> None:
    prefix = tmp_path / "out" / "a"
    code, _, err = run(["pack", str(src), "-o", str(prefix), *PACK_OPTIONS, "-q"], capsys)
    assert code == 130
    assert err.startswith("stc: interrupted; to go on from there: stc pack ")
    again = resume_command(err)
    assert again == ["pack", str(src), "-o", str(prefix), *PACK_OPTIONS, "--resume"]

    code, out, err = run(again, capsys)
    assert (code, err) == (0, "")
    assert "resumed after chunk 2" in out
    stc.pack(src, tmp_path / "ref" / "a", compression="zstd", level=5, chunk_size=16384,
             block_size=8192)  # fmt: skip
    assert parts(prefix) == parts(tmp_path / "ref" / "a")


def parts(prefix: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(prefix.parent.glob(prefix.name + ".part*"))]


def test_the_resume_command_is_in_the_json_document_too(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], stop_at_checkpoint: None
) -> None:
    prefix = tmp_path / "out" / "a"
    code, out, _ = run(
        [
            "pack",
            str(src),
            "-o",
            str(prefix),
            "--chunk-size",
            "16K",
            "--block-size",
            "8K",
            "--json",
        ],
        capsys,
    )
    document = json.loads(out)
    assert code == document["exit_code"] == 130 and document["ok"] is False
    assert document["resume_command"] == (
        f"stc pack {src} -o {prefix} -c gzip -l 6 --chunk-size 16K --block-size 8K --resume"
    )


def test_info_of_an_interrupted_pack_shows_what_is_known(
    src: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stop_at_checkpoint: None,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["pack", "src", "-o", "out/a", *PACK_OPTIONS, "-q"]) == 130
    capsys.readouterr()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, _ = run(["info", "../out/a"], capsys)
    assert code == 0
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert lines["chunks"].strip() == "3 of 16.0 KiB so far"
    assert lines["size"].strip() == "48.0 KiB packed so far"
    assert lines["complete"].strip() == "no (interrupted pack)"
    assert "None" not in out and "sha256" not in lines and "restore" not in lines
    # The pack ran in tmp_path with a relative source: the command goes there first.
    assert lines["resume"].strip() == (
        f"cd {tmp_path} && stc pack src -o {tmp_path}/out/a {' '.join(PACK_OPTIONS)} --resume"
    )
    monkeypatch.chdir(tmp_path)
    command = lines["resume"].split("&& stc ", 1)[1]
    assert main([*shlex.split(command), "-q"]) == 0
    assert stc.verify(tmp_path / "out" / "a", deep=True).ok


def test_ctrl_c_during_unpack_prints_the_exact_resume_command(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = tmp_path / "arc" / "a"
    stc.pack(src, prefix, chunk_size=16384, block_size=8192)
    out = tmp_path / "restored"
    with monkeypatch.context() as patch:
        patch.setattr(UnpackJournal, "record", interrupt_at_record(4))
        code, _, err = run(["unpack", str(prefix), "-C", str(out), "--max-members", "99"], capsys)
    assert code == 130
    again = resume_command(err)
    assert again == ["unpack", str(prefix), "-C", str(out), "--max-members", "99", "--resume"]
    code, stdout, _ = run(again, capsys)
    assert code == 0 and "resumed after" in stdout
    assert snapshot(out / src.relative_to("/")) == snapshot(src)


def test_ctrl_c_during_an_encrypted_unpack_prints_a_resume_command_with_the_key(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = stc.X25519Identity.generate()
    (tmp_path / "key.txt").write_text(f"{identity}\n")
    prefix = tmp_path / "arc" / "a"
    stc.pack(src, prefix, chunk_size=16384, block_size=8192, recipients=[identity.recipient])
    out = tmp_path / "restored"
    key = str(tmp_path / "key.txt")
    with monkeypatch.context() as patch:
        patch.setattr(UnpackJournal, "record", interrupt_at_record(4))
        code, _, err = run(["unpack", str(prefix), "-C", str(out), "-i", key], capsys)
    assert code == 130
    again = resume_command(err)
    assert again == ["unpack", str(prefix), "-C", str(out), "-i", key, "--resume"]
    code, stdout, _ = run(again, capsys)
    assert code == 0 and "resumed after" in stdout
    assert snapshot(out / src.relative_to("/")) == snapshot(src)


def test_failures_a_resume_cannot_get_past_print_no_command(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = tmp_path / "arc" / "a"
    stc.pack(src, prefix, chunk_size=16384, block_size=8192)
    out = str(tmp_path / "out")
    for argv, code in [
        (["unpack", str(tmp_path / "none" / "x"), "-C", out], 5),  # nothing was started
        (["unpack", str(prefix), "-C", out, "--max-members", "5"], 12),  # a cap stays a cap
        (["unpack", str(prefix), "-C", out, "-c", "xz"], 9),  # the codec stays wrong
    ]:
        result, _, err = run(argv, capsys)
        assert (result, "to go on" in err) == (code, False), err


def test_a_cap_counts_the_members_an_interrupted_run_restored(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resuming again and again cannot restore more than --max-members in all."""
    prefix = tmp_path / "arc" / "a"
    stc.pack(src, prefix, chunk_size=16384, block_size=8192)
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(UnpackJournal, "record", interrupt_at_record(4))
        with pytest.raises(KeyboardInterrupt):
            stc.unpack(prefix, out)
    total = len(list(stc.list_members(prefix)))
    with pytest.raises(stc.LimitExceededError, match=f"max_members={total - 1}"):
        stc.unpack(prefix, out, resume=True, max_members=total - 1)
    done = stc.unpack(prefix, out, resume=True, max_members=total)
    assert done.resumed and done.skipped_members + done.members == total
    assert snapshot(out / src.relative_to("/")) == snapshot(src)


def test_paths_that_look_like_options_stay_paths(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stop_at_checkpoint: None,
) -> None:
    monkeypatch.chdir(tmp_path)
    random_files(tmp_path / "-src", seed=5, count=20, size=10_000)
    code, _, err = run(["pack", "./-src", "-o", "./-out", *PACK_OPTIONS, "-q"], capsys)
    assert code == 130
    again = resume_command(err)
    assert again[:4] == ["pack", "./-src", "-o", "./-out"]
    assert main([*again, "-q"]) == 0
    assert stc.verify(tmp_path / "-out", deep=True).ok


@pytest.mark.parametrize("spelling", ["--json", "--jso", "--js"])
def test_json_spelled_as_argparse_allows_still_reports_a_usage_error(
    spelling: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["verify", "x", spelling, "--bogus"], capsys)
    assert code == 2 and json.loads(out)["type"] == "UsageError"


def test_a_bug_still_gives_one_json_document_before_its_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(stc.sync, "read_manifest", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["info", "x", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert document == {
        "ok": False,
        "error": "internal error: RuntimeError('a bug')",
        "exit_code": 1,
    }


@pytest.mark.parametrize(
    ("size", "spelled"),
    [(52428800, "50M"), (10**10, "10GB"), (2**30, "1G"), (1000, "1KB"), (1023, "1023")],
)
def test_sizes_in_commands_read_back_exactly(size: int, spelled: str) -> None:
    assert exact_size(size) == spelled
    assert parse_size(spelled) == size


class Interrupting(ProgressBar):
    """The CLI's bar, with Ctrl-C pressed after some progress."""

    def __init__(self, after: int | None) -> None:
        super().__init__("packing", Console(file=io.StringIO(), force_terminal=True))
        self._after = after
        self._advances = 0

    def advance(self, done_bytes: int) -> None:
        super().advance(done_bytes)
        self._advances += 1
        if self._after is not None and self._advances == self._after:
            raise KeyboardInterrupt


@pytest.mark.parametrize("after", [3, None], ids=["interrupted", "done"])
def test_the_progress_bar_stops_where_the_work_stopped(
    src: Path, tmp_path: Path, after: int | None
) -> None:
    bar = Interrupting(after)
    with pytest.raises(KeyboardInterrupt) if after else contextlib.nullcontext(), bar:
        stc.pack(src, tmp_path / "out" / "a", chunk_size=16384, block_size=8192, progress=bar)
    assert bar.total is not None and bar.completed > 0
    if after:
        assert bar.completed < bar.total / 2
    else:
        assert bar.completed == bar.total
