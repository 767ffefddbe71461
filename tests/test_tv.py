"""``stc list`` lines: the batch formatting of index entries, and of an index page's columns,
gives each member its own line."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streaming_tar_compressor.cli.tv import TvLines
from streaming_tar_compressor.core.member_index import IndexEntry, PageColumns
from streaming_tar_compressor.models import MemberKind, TarMember

entries = st.builds(
    IndexEntry,
    name=st.text(alphabet="ab/é\udcff", min_size=1, max_size=12),
    kind=st.sampled_from(list(MemberKind)),
    header_offset=st.integers(0, 2**40),
    data_offset=st.integers(0, 2**40),
    size=st.integers(0, 2**40),
    mode=st.integers(0, 0o7777),
    mtime_ns=st.integers(0, 2**62),
    uid=st.integers(0, 70_000),
    gid=st.integers(0, 70_000),
    uname=st.sampled_from(["", "root", "ü"]),
    gname=st.sampled_from(["", "staff"]),
    linkname=st.text(alphabet="ab/", max_size=5),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(entries, max_size=30))
def test_a_batch_of_index_entries_gets_each_ones_own_line(batch: list[IndexEntry]) -> None:
    assert TvLines().lines(batch) == [TvLines().line(entry) for entry in batch]


@settings(max_examples=100, deadline=None)
@given(st.lists(entries, min_size=1, max_size=30))
def test_a_page_of_columns_gets_each_members_own_line(batch: list[IndexEntry]) -> None:
    page = PageColumns(*(list(column) for column in zip(*batch, strict=True)))
    assert page.entries() == batch
    assert TvLines().page_lines(page) == [TvLines().line(entry) for entry in batch]


def test_a_batch_of_members_read_from_the_stream_gets_each_ones_own_line() -> None:
    members = [
        TarMember("d", MemberKind.DIRECTORY, mode=0o755, mtime=60.5, uname="root"),
        TarMember("d/l", MemberKind.SYMLINK, mtime=120, linkname="../x"),
        TarMember("d/f", MemberKind.FILE, 12, 0o600, 3600, 1000, 1000),
    ]
    lines = TvLines().lines(members)
    assert lines == [TvLines().line(member) for member in members]
    assert [line.split()[0] for line in lines] == ["drwxr-xr-x", "lrw-r--r--", "-rw-------"]
    assert lines[0].endswith(" d/") and lines[1].endswith(" d/l -> ../x")
