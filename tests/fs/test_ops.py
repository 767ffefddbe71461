"""The unpack's file operations: the compiled ones (``_native.c``) do exactly what the Python
reference does, failures included, and the runner keeps their order across batches."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streaming_tar_compressor.errors import OutputError
from streaming_tar_compressor.fs import ops
from streaming_tar_compressor.fs.ops import (
    CLOSE,
    CREATE,
    FINISH,
    FOLDER_FINISH,
    NEW_FILE_FLAGS,
    PLACE,
    RENAME,
    SYMLINK_MTIME,
    UNLINK_SOURCE,
    WRITE,
    Op,
    OpFailed,
    OpRunner,
    run_ops_python,
)
from streaming_tar_compressor.fs.writer import OPEN_DIRS_KEPT, TreeWriter
from streaming_tar_compressor.models import MemberKind, TarMember
from tests.helpers import unavailable


@pytest.fixture
def built() -> ModuleType:
    """The compiled module, whatever STC_PURE_PYTHON says (that only steers the writers)."""
    return built_module()


def test_writers_use_what_the_environment_asks_for():
    pure = os.environ.get("STC_PURE_PYTHON") == "1"
    assert OpRunner().compiled == (not pure and ops.built is not None)


# -- the same calls in C and in Python ---------------------------------------------------------

NAMES = ["a", "b", "c", "d/", "é"]  # "d/" stands for a folder that is there from the start
names = st.sampled_from([name.rstrip("/") for name in NAMES])
creates = st.tuples(
    st.just(CREATE),
    names,
    st.binary(max_size=300),
    st.sampled_from([0o600, 0o644, 0o755, 0o400]),
    st.integers(-(2**40), 2**62),
)
renames = st.tuples(st.just(RENAME), names, names, st.sampled_from([0, UNLINK_SOURCE]))
places = st.tuples(
    st.just(PLACE),
    names,
    st.binary(max_size=300),
    st.sampled_from([0o600, 0o644]),
    st.integers(-(2**40), 2**62),
    names,  # the temp name: taken too, at times
)


def built_module() -> ModuleType:
    if ops.built is None:
        unavailable("the compiled module _native is not built (no C compiler or Python headers?)")
    return ops.built


def run_compiled(batch: list[Op]) -> tuple[int, int] | None:
    """One batch on the compiled module's thread: the twin of run_ops_python."""
    thread = built_module().OpThread()
    try:
        thread.submit(batch)
        outcome = thread.settle()
        return None if outcome is None else outcome[:2]
    finally:
        thread.close()


def materialize(spec: tuple[object, ...], dir_fd: int) -> Op:
    if spec[0] == CREATE:
        _, name, data, mode, mtime_ns = spec
        return (CREATE, dir_fd, name, data, mode, -1, -1, mtime_ns, f"member {name}")
    if spec[0] == PLACE:
        _, name, data, mode, mtime_ns, temp = spec
        return (PLACE, dir_fd, name, data, mode, -1, -1, mtime_ns, temp, f"member {name}")
    _, src, dst, flags = spec
    return (RENAME, dir_fd, src, dst, flags, 0, f"member {dst}")


def state(root: Path) -> dict[str, tuple[object, ...]]:
    found: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.iterdir()):
        st_ = path.lstat()
        if stat.S_ISDIR(st_.st_mode):
            found[path.name] = ("dir",)
        else:
            found[path.name] = (path.read_bytes(), stat.S_IMODE(st_.st_mode), st_.st_mtime_ns)
    return found


@contextlib.contextmanager
def folder(root: Path) -> Iterator[int]:
    """A folder with the one subfolder "d" that NAMES promises, and its descriptor."""
    root.mkdir()
    (root / "d").mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(specs=st.lists(st.one_of(creates, renames, places), max_size=12))
def test_compiled_operations_match_the_python_reference(built, tmp_path_factory, specs):
    base = tmp_path_factory.mktemp("ops")
    outcomes, states = [], []
    for runner in (run_ops_python, run_compiled):
        root = base / runner.__name__
        with folder(root) as dir_fd:
            outcomes.append(runner([materialize(spec, dir_fd) for spec in specs]))
        states.append(state(root))
    assert outcomes[0] == outcomes[1]
    assert states[0] == states[1]


@pytest.mark.parametrize("runner", ["python", "compiled"])
def test_each_failure_is_reported_with_its_index_and_errno(tmp_path, runner):
    run = run_ops_python if runner == "python" else run_compiled
    with folder(tmp_path / "out") as fd:
        made = (CREATE, fd, "f", b"1", 0o644, -1, -1, 0, "f")
        assert run([made]) is None
        again = (CREATE, fd, "g", b"1", 0o644, -1, -1, 0, "g")
        assert run([again, again]) == (1, errno.EEXIST)  # never replaces: O_EXCL
        assert run([(CREATE, fd, "d/x", b"", 0o644, -1, -1, 0, "x")]) is None
        assert run([(RENAME, fd, "nothing", "g", 0, 0, "g")]) == (0, errno.ENOENT)
        # A file over a folder: refused, and the file goes (nothing else would remove it).
        assert run([(CREATE, fd, "t", b"2", 0o644, -1, -1, 0, "t")]) is None
        assert run([(RENAME, fd, "t", "d", 0, 0, "d")])[1] in (errno.EISDIR, errno.ENOTEMPTY)
        assert not (tmp_path / "out" / "t").exists()
        assert run([(CLOSE, 1_000_000)]) == (0, errno.EBADF)
        # Never through a symlink: O_NOFOLLOW on the last name.
        os.symlink("f", tmp_path / "out" / "s")
        assert run([(CREATE, fd, "s", b"3", 0o644, -1, -1, 0, "s")]) == (0, errno.EEXIST)
        assert (tmp_path / "out" / "f").read_bytes() == b"1"


@pytest.mark.parametrize("runner", ["python", "compiled"])
def test_a_file_of_several_pieces_is_written_then_finished_and_closed(tmp_path, runner):
    run = run_ops_python if runner == "python" else run_compiled
    with folder(tmp_path / "out") as dir_fd:
        fd = os.open("t", NEW_FILE_FLAGS, 0o600, dir_fd=dir_fd)
        pieces = [b"first ", memoryview(b"--second--")[2:8], b""]
        finish = (FINISH, fd, 0o640, -1, -1, -(10**9) - 5, "t", (), "member")
        assert run([*((WRITE, fd, piece, "member") for piece in pieces), finish]) is None
        path = tmp_path / "out" / "t"
        assert path.read_bytes() == b"first second"
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        assert path.stat().st_mtime_ns == -(10**9) - 5
        with pytest.raises(OSError) as closed:
            os.fstat(fd)  # FINISH closed it
        assert closed.value.errno == errno.EBADF
        # A failed FINISH still closes; a WRITE to a descriptor that is not open fails.
        reader = os.open("t", os.O_RDONLY, dir_fd=dir_fd)
        assert run([(WRITE, reader, b"x", "member")]) == (0, errno.EBADF)
        assert run([(FINISH, reader, 0o600, -1, -1, 2**62, "t", (), "member")]) is None
        assert run([(FINISH, 1_000_000, 0o600, -1, -1, 0, "t", (), "member")]) == (0, errno.EBADF)


@pytest.mark.parametrize("runner", ["python", "compiled"])
def test_a_rename_sets_a_symlinks_own_mtime_and_drops_a_second_link(tmp_path, runner):
    run = run_ops_python if runner == "python" else run_compiled
    out = tmp_path / "out"
    with folder(out) as fd:
        os.symlink("missing-target", out / "tmp-link")
        assert (
            run([(RENAME, fd, "tmp-link", "link", SYMLINK_MTIME, 123_000_000_789, "link")]) is None
        )
        assert os.lstat(out / "link").st_mtime_ns == 123_000_000_789
        (out / "file").write_bytes(b"x")
        os.link(out / "file", out / "tmp-twin")
        # Two links to one file: rename does nothing, so the temp name is unlinked after.
        assert run([(RENAME, fd, "tmp-twin", "file", UNLINK_SOURCE, 0, "file")]) is None
        assert sorted(os.listdir(out)) == ["d", "file", "link"]


@pytest.mark.parametrize("runner", ["python", "compiled"])
def test_a_folder_is_finished_by_name_and_never_through_a_symlink(tmp_path, runner):
    run = run_ops_python if runner == "python" else run_compiled
    out = tmp_path / "out"
    with folder(out) as fd:
        before = open_descriptors()
        assert run([(FOLDER_FINISH, fd, "d", 0o705, -1, -1, -(10**9) - 7, "d/")]) is None
        assert stat.S_IMODE((out / "d").stat().st_mode) == 0o705
        assert (out / "d").stat().st_mtime_ns == -(10**9) - 7
        assert open_descriptors() == before  # the folder it opened is closed again
        os.symlink("d", out / "s")
        refused = run([(FOLDER_FINISH, fd, "s", 0o700, -1, -1, 0, "s/")])
        assert refused in ((0, errno.ELOOP), (0, errno.ENOTDIR))  # Linux says ENOTDIR
        assert stat.S_IMODE((out / "d").stat().st_mode) == 0o705
        (out / "f").write_bytes(b"")
        assert run([(FOLDER_FINISH, fd, "f", 0o700, -1, -1, 0, "f/")]) == (0, errno.ENOTDIR)
        assert run([(FOLDER_FINISH, fd, "none", 0o700, -1, -1, 0, "none/")]) == (0, errno.ENOENT)


def test_the_compiled_thread_runs_no_batch_after_a_failure_or_a_stop(tmp_path):
    native = built_module()
    out = tmp_path / "out"
    with folder(out) as fd:
        thread = native.OpThread()
        try:
            made = (CREATE, fd, "a", b"1", 0o644, -1, -1, 0, "a")
            bad = (RENAME, fd, "missing", "x", 0, 0, "x")
            later = (CREATE, fd, "b", b"2", 0o644, -1, -1, 0, "b")
            thread.submit([made, bad])
            thread.submit([later])
            assert thread.pending == 2
            assert thread.settle() == (1, errno.ENOENT, bad)
            assert thread.settle() == (0, 0, later)  # queued after the failure: not run
            assert thread.pending == 0
            with pytest.raises(RuntimeError, match="no batch"):
                thread.settle()
        finally:
            assert thread.close() == [bad, later]
        assert sorted(os.listdir(out)) == ["a", "d"]
        stopped = native.OpThread()
        try:
            stopped.stop()
            unrun = (CREATE, fd, "c", b"3", 0o644, -1, -1, 0, "c")
            stopped.submit([unrun])
            assert stopped.settle() == (0, 0, unrun)
        finally:
            assert stopped.close() == [unrun]
        assert sorted(os.listdir(out)) == ["a", "d"]


def test_closing_the_compiled_thread_releases_what_it_was_never_asked_to_settle(tmp_path):
    native = built_module()
    content = b"held by the batch " * 100
    before = sys.getrefcount(content)
    with folder(tmp_path / "out") as fd:
        thread = native.OpThread()
        thread.stop()  # so the batch waits unrun until close
        thread.submit([(CREATE, fd, "x", content, 0o644, -1, -1, 0, "x")])
        assert sys.getrefcount(content) == before + 2  # the operation, and its buffer
        unrun = thread.close()
        assert [op[3] for op in unrun] == [content]  # handed back, not lost
        assert thread.close() == []  # twice is harmless
        del unrun
        assert sys.getrefcount(content) == before
        with pytest.raises(RuntimeError, match="closed"):
            thread.submit([])


def test_what_did_not_run_is_known_even_when_a_settle_answer_is_lost(tmp_path):
    """Ctrl-C can land as settle() returns, before its answer is stored: close() still hands
    back every operation that did not run, the failed one first."""
    native = built_module()
    with folder(tmp_path / "out") as fd:
        thread = native.OpThread()
        bad = (RENAME, fd, "missing", "x", 0, 0, "x")
        after = (CREATE, fd, "a", b"1", 0o644, -1, -1, 0, "a")
        never = (CREATE, fd, "b", b"2", 0o644, -1, -1, 0, "b")
        thread.submit([bad, after])
        thread.submit([never])
        thread.settle()  # its answer dropped, as an interrupt would
        thread.stop()
        assert thread.close() == [bad, after, never]
    assert sorted(os.listdir(tmp_path / "out")) == ["d"]


def test_the_compiled_thread_refuses_a_child_after_fork(tmp_path):
    native = built_module()
    thread = native.OpThread()
    try:
        with folder(tmp_path / "out") as fd:
            thread.submit([(CREATE, fd, "a", b"1", 0o644, -1, -1, 0, "a")])
            child = os.fork()
            if child == 0:  # the thread is not in this process: waiting for it would hang
                try:
                    thread.settle()
                except RuntimeError as exc:
                    os._exit(0 if "after fork" in str(exc) else 1)
                os._exit(2)
            _, status = os.waitpid(child, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            assert thread.settle() is None  # the parent's thread ran it
    finally:
        thread.close()
    assert (tmp_path / "out" / "a").read_bytes() == b"1"


# -- the runner --------------------------------------------------------------------------------


@pytest.mark.parametrize("compiled_runner", [False, True])
def test_order_holds_across_batches_and_nothing_runs_after_a_failure(tmp_path, compiled_runner):
    if compiled_runner:
        built_module()
    out = tmp_path / "out"
    with folder(out) as fd:
        runner = OpRunner(compiled=compiled_runner)
        count = 3 * ops.BATCH_OPS + 7
        for index in range(count):  # each file renamed over by the next: order shows
            runner.add((CREATE, fd, f"t{index}", str(index).encode(), 0o644, -1, -1, 0, "f"), 8)
            runner.add((RENAME, fd, f"t{index}", "f", 0, 0, "f"))
        runner.wait()
        assert (out / "f").read_bytes() == str(count - 1).encode()
        bad = (RENAME, fd, "missing", "g", 0, 0, "g")
        after = [(CREATE, fd, f"late{i}", b"", 0o644, -1, -1, 0, "late") for i in range(600)]
        with pytest.raises(OpFailed) as failure:
            runner.add(bad)
            for op in after:
                runner.add(op)
            runner.wait()
        assert failure.value.op == bad and failure.value.errno == errno.ENOENT
        unrun = runner.abandon()
        assert unrun[0] == bad and set(unrun[1:]) <= set(after)
        assert not list(out.glob("late*"))  # the failure stopped everything queued after it
        # After abandon the runner still works, at once: a writer's cleanup goes through it.
        runner.add((CREATE, fd, "after", b"", 0o644, -1, -1, 0, "after"))
        assert (out / "after").exists()


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def file_size_limit() -> Callable[[int], contextlib.AbstractContextManager[None]]:
    """A real write failure in any thread, C ones included: inside ``with
    file_size_limit(size)``, writes past ``size`` fail with EFBIG (RLIMIT_FSIZE; SIGXFSZ
    ignored so the process lives). Lifted on leaving the block, before pytest reports: its
    own output, written to a file in CI, is past any small limit."""

    @contextlib.contextmanager
    def limited(size: int) -> Iterator[None]:
        previous = resource.getrlimit(resource.RLIMIT_FSIZE)
        handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, previous[1]))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, previous)
            signal.signal(signal.SIGXFSZ, handler)

    return limited


@pytest.mark.parametrize("compiled_runner", [False, True])
def test_a_write_that_fails_on_the_thread_leaves_no_file_and_no_descriptor(
    tmp_path, monkeypatch, file_size_limit, compiled_runner
):
    if compiled_runner:
        built_module()
    monkeypatch.setattr(ops, "native", ops.built if compiled_runner else None)
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=True)
    before = open_descriptors()
    member = TarMember(name="big", kind=MemberKind.FILE, size=3 * 300_000, mode=0o644, mtime=1)
    with (
        file_size_limit(500_000),
        pytest.raises(OutputError, match=r"cannot write 'big'.*File too large"),
    ):
        writer.start(member)
        for _ in range(3):  # pieces small enough to go to the thread as WRITE operations
            writer.write(b"x" * 300_000)
        writer.end(member)
        writer.flush()
    writer.abort()
    writer.close()
    assert not list(out.iterdir())  # neither the temp file nor the member
    assert open_descriptors() == before - 1  # and the output folder's own is closed too


def test_a_failure_met_while_queueing_a_finish_leaves_no_file(
    tmp_path, monkeypatch, file_size_limit
):
    """One operation a batch, one batch ahead: the failed second piece is met when the FINISH
    is queued, so end() raises before the file is recorded; the unrun FINISH is cleaned up."""
    built_module()
    monkeypatch.setattr(ops, "native", ops.built)
    monkeypatch.setattr(ops, "BATCH_OPS", 1)
    monkeypatch.setattr(ops, "BATCHES_IN_FLIGHT", 1)
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=True)
    before = open_descriptors()
    member = TarMember(name="big", kind=MemberKind.FILE, size=2 * 300_000, mode=0o644, mtime=1)
    with file_size_limit(400_000):
        writer.start(member)
        writer.write(b"x" * 300_000)
        writer.write(b"x" * 300_000)
        with pytest.raises(OutputError, match=r"cannot write 'big'.*File too large"):
            writer.end(member)
    writer.abort()
    writer.close()
    assert not list(out.iterdir())
    assert open_descriptors() == before - 1


def test_a_file_ended_after_a_commit_that_closed_its_folder(tmp_path):
    """A chunk may verify in the middle of a member: the commit's renames walk many folders,
    which can close the one the open member's folder descriptor named."""
    out = tmp_path / "out"
    writer = TreeWriter(str(out), deferred=True)
    folders = OPEN_DIRS_KEPT + 50
    for index in range(folders):
        name = f"f{index:03d}/x"
        member = TarMember(name=name, kind=MemberKind.FILE, size=1, mode=0o644, mtime=1e9)
        writer.start(member)
        writer.write(b"x")
        writer.end(member)
    last = TarMember(name="last/y", kind=MemberKind.FILE, size=4, mode=0o600, mtime=2e9)
    writer.start(last)
    writer.write(b"ab")  # the member's first piece...
    writer.commit()  # ...then its chunk's neighbour verifies
    writer.write(b"cd")
    writer.end(last)
    writer.commit()
    writer.close()
    assert (out / "last" / "y").read_bytes() == b"abcd"
    assert len(list(out.glob("f*/x"))) == folders
    assert not [p for p in out.rglob(".stc-*")]


# -- PLACE: a checked file under its own name ---------------------------------------------------


def run_with(runner: str) -> Callable[[list[Op]], tuple[int, int] | None]:
    return run_ops_python if runner == "python" else run_compiled


def place(fd: int, name: str, data: bytes, temp: str = ".t") -> Op:
    return (PLACE, fd, name, data, 0o640, -1, -1, 7 * 10**9, temp, name)


@pytest.mark.parametrize("runner", ["python", "compiled"])
@pytest.mark.parametrize("there", ["nothing", "file", "symlink", "folder"])
def test_a_placed_file_takes_its_name_or_replaces_what_has_it(tmp_path, runner, there):
    out = tmp_path / "out"
    with folder(out) as fd:
        outside = tmp_path / "outside"
        outside.write_bytes(b"keep")
        if there == "file":
            (out / "f").write_bytes(b"old")
        elif there == "symlink":
            (out / "f").symlink_to(outside)
        elif there == "folder":
            (out / "f").mkdir()
        outcome = run_with(runner)([place(fd, "f", b"new")])
    assert outside.read_bytes() == b"keep"  # never written through a symlink
    assert sorted(p.name for p in out.iterdir()) == ["d", "f"]  # no temp name left
    if there == "folder":
        assert outcome == (0, errno.EISDIR) and (out / "f").is_dir()
        return
    found = (out / "f").lstat()
    assert outcome is None and (out / "f").read_bytes() == b"new"
    assert (stat.S_IFMT(found.st_mode), stat.S_IMODE(found.st_mode)) == (stat.S_IFREG, 0o640)
    assert found.st_mtime_ns == 7 * 10**9


@pytest.mark.parametrize("runner", ["python", "compiled"])
@pytest.mark.parametrize("taken", [False, True])
def test_a_placed_file_that_fails_leaves_nothing_it_made(tmp_path, runner, taken, file_size_limit):
    """A write that fails (EFBIG) after the file was made: the file goes, under its own name
    or its temp name; a file that already had the name stays as it was."""
    out = tmp_path / "out"
    with folder(out) as fd:
        if taken:
            (out / "f").write_bytes(b"old")
        with file_size_limit(1000):
            outcome = run_with(runner)([place(fd, "f", b"x" * 5000)])
    assert outcome == (0, errno.EFBIG)
    left = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "d"}
    assert left == ({"f": b"old"} if taken else {})


@pytest.mark.parametrize("runner", ["python", "compiled"])
def test_a_placed_file_never_takes_a_temp_name_it_did_not_make(tmp_path, runner):
    out = tmp_path / "out"
    with folder(out) as fd:
        (out / "f").write_bytes(b"old")
        (out / ".t").write_bytes(b"not ours")
        outcome = run_with(runner)([place(fd, "f", b"new")])
    assert outcome == (0, errno.EEXIST)
    assert (out / "f").read_bytes() == b"old" and (out / ".t").read_bytes() == b"not ours"


@pytest.mark.parametrize("taken", [False, True])
def test_a_placed_file_interrupted_in_python_leaves_nothing_it_made(tmp_path, monkeypatch, taken):
    """Made in Python (no compiled module), a PLACE runs where Ctrl-C lands: a file it made
    goes, under its own name or its temp name."""
    write = ops._write_all

    def interrupted(fd: int, data: bytes | memoryview) -> None:
        write(fd, bytes(data)[:3])
        raise KeyboardInterrupt

    out = tmp_path / "out"
    with folder(out) as fd:
        if taken:
            (out / "f").write_bytes(b"old")
        monkeypatch.setattr(ops, "_write_all", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_ops_python([place(fd, "f", b"0123456789")])
    left = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "d"}
    assert left == ({"f": b"old"} if taken else {})
