"""TarWriter: headers byte-identical to tarfile's pax encoder, and the record padding."""

from __future__ import annotations

import io
import tarfile

from hypothesis import given
from hypothesis import strategies as st

from streaming_tar_compressor._compiled import built
from streaming_tar_compressor.core import member_index
from streaming_tar_compressor.core.tar_writer import RECORD, TarWriter
from streaming_tar_compressor.models import MemberKind, TarMember

KINDS = [
    MemberKind.FILE,
    MemberKind.DIRECTORY,
    MemberKind.SYMLINK,
    MemberKind.HARDLINK,
    MemberKind.FIFO,
]


def reference(member: TarMember) -> bytes:
    info = tarfile.TarInfo(member.name)
    info.type = {
        MemberKind.FILE: tarfile.REGTYPE,
        MemberKind.DIRECTORY: tarfile.DIRTYPE,
        MemberKind.SYMLINK: tarfile.SYMTYPE,
        MemberKind.HARDLINK: tarfile.LNKTYPE,
        MemberKind.FIFO: tarfile.FIFOTYPE,
    }[member.kind]
    info.size = member.size if member.kind is MemberKind.FILE else 0
    info.mode, info.mtime = member.mode, int(member.mtime)
    info.uid, info.gid, info.uname, info.gname = member.uid, member.gid, member.uname, member.gname
    info.linkname = member.linkname
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


names = st.text(alphabet="abcé-_./ 09\N{GRINNING FACE}", min_size=1, max_size=130).filter(
    lambda n: n.strip("/") == n and "//" not in n
)


@given(
    name=names,
    kind=st.sampled_from(KINDS),
    size=st.one_of(st.integers(0, 10**6), st.integers(8**11 - 2, 8**11 + 2)),
    mode=st.integers(0, 0o177777),  # file-type bits too: only the permission bits are kept
    # past what a C long long holds too: the compiled header leaves those to pax as well
    mtime=st.one_of(
        st.integers(0, 2**33),
        st.integers(-100, -1),
        st.integers(2**62, 2**70),
        st.floats(-(2.0**33), 2.0**70, allow_nan=False, allow_infinity=False),
    ),
    uid=st.one_of(st.integers(0, 70_000), st.integers(8**7 - 1, 8**7 + 1)),
    owner=st.text(alphabet="rootéx", max_size=40),
    link=st.text(alphabet="ab/.é", max_size=120),
)
def test_headers_equal_tarfiles_pax_encoder(name, kind, size, mode, mtime, uid, owner, link):
    """In both builds: compiled (one C call) and STC_PURE_PYTHON=1 (struct.pack)."""
    linked = kind in (MemberKind.SYMLINK, MemberKind.HARDLINK)
    member = TarMember(
        name=name,
        kind=kind,
        size=size if kind is MemberKind.FILE else 0,
        mode=mode,
        mtime=mtime,
        uid=uid,
        gid=uid,
        uname=owner,
        gname=owner,
        linkname=link if linked else "",
    )
    assert TarWriter().header(member) == reference(member)


def test_offsets_and_record_padding_follow_gnu_tar():
    writer = TarWriter()
    stream = io.BytesIO()
    member = TarMember(name="f", kind=MemberKind.FILE, size=700)
    stream.write(writer.header(member) + bytes(700) + bytes(-700 % 512))
    assert writer.offset == stream.tell() == 512 + 1024
    stream.write(writer.finish())
    assert writer.offset == stream.tell()
    assert stream.tell() % RECORD == 0
    with tarfile.open(fileobj=io.BytesIO(stream.getvalue())) as archive:
        assert archive.getnames() == ["f"]


class Added:
    """An index that records what a writer adds to it."""

    def __init__(self) -> None:
        self.rows: list[tuple[TarMember, int, int]] = []

    def add(self, member: TarMember, header_offset: int, data_offset: int, /) -> None:
        self.rows.append((member, header_offset, data_offset))


@given(
    st.lists(
        st.builds(
            TarMember,
            name=names,
            kind=st.sampled_from(KINDS),
            size=st.integers(0, 5000),
            mode=st.integers(0, 2**32 - 1),  # the header keeps 0o7777 of it, the index all
            # past octal (pax), within the index (ns); a float's fraction is the index's only
            mtime=st.integers(0, 9 * 10**9) | st.floats(0, 9e9),
            uid=st.integers(0, 8**7 + 1),
            gid=st.integers(0, 2**64 - 1),
        ),
        max_size=12,
    )
)
def test_a_writer_adds_each_member_to_its_index_once_where_its_headers_start(
    members: list[TarMember],
) -> None:
    """Plain headers are added in the header's own call when compiled, pax ones after."""
    writer, added, expected = TarWriter(), Added(), []
    builders = [member_index.PageBuilderPython(member_index.KINDS, 5, 10**6, bytes)]
    if built is not None:
        builders.append(built.PageBuilder(member_index.KINDS, 5, 10**6, bytes))
    for member in members:
        offset = writer.offset
        header = writer.header(member, added)
        assert header == reference(member)
        expected.append((member, offset, offset + len(header)))
    assert added.rows == expected
    from_rows = member_index.PageBuilderPython(member_index.KINDS, 5, 10**6, bytes)
    for row in expected:
        from_rows.add(*row)
    pages = from_rows.finish()
    for builder in builders:
        writer = TarWriter()
        for member in members:
            writer.header(member, builder)
        assert builder.finish() == pages


def test_a_builder_numbers_kinds_its_own_way_whatever_the_header_calls_them() -> None:
    """The header finds a member's kind in the writer's tuple; the page stores its position
    in the builder's, as the builder's own add() does (here in another order; files stay
    first, which both twins take as the kind whose size is kept)."""
    kinds = (MemberKind.FILE, *reversed(member_index.KINDS[1:]))
    members = [
        TarMember("d", MemberKind.DIRECTORY),
        TarMember("d/f", MemberKind.FILE, size=3),
        TarMember("d/l", MemberKind.SYMLINK, linkname="f"),
    ]
    from_rows = member_index.PageBuilderPython(kinds, 5, 10**6, bytes)
    writer = TarWriter()
    for member in members:
        offset = writer.offset
        from_rows.add(member, offset, offset + len(writer.header(member)))
    expected = from_rows.finish()
    makers = [member_index.PageBuilderPython] + ([built.PageBuilder] if built else [])
    for make in makers:
        builder, writer = make(kinds, 5, 10**6, bytes), TarWriter()
        for member in members:
            writer.header(member, builder)
        assert builder.finish() == expected


def test_a_negative_size_is_left_to_the_pax_encoder() -> None:
    member = TarMember("f", MemberKind.FILE, size=-1)
    assert TarWriter().header(member) == reference(member)
