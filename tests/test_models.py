"""``slot_maker``: a TarMember (or a tar reader's event) made by the compiled SlotMaker is the
one its dataclass makes (equal, same hash and repr, still frozen, tracked by the cycle
collector); without the compiled module it is the dataclass itself."""

from __future__ import annotations

import dataclasses
import gc
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streaming_tar_compressor import _compiled
from streaming_tar_compressor._compiled import built, slot_maker
from streaming_tar_compressor.core.tar_reader import MemberStart, WholeMember
from streaming_tar_compressor.models import MemberKind, TarMember
from tests.helpers import unavailable


@pytest.fixture(scope="module")
def native() -> ModuleType:
    if built is None:
        unavailable("the compiled module _native is not built (no C compiler or Python headers?)")
    return built


FIELDS = tuple(f.name for f in dataclasses.fields(TarMember))
texts = st.text(max_size=20)
numbers = st.integers(-(2**70), 2**70)
values = st.tuples(
    texts,
    st.sampled_from(MemberKind),
    numbers,
    numbers,
    st.one_of(numbers, st.floats(allow_nan=False)),
    numbers,
    numbers,
    texts,
    texts,
    texts,
    numbers,
    numbers,
    numbers,
)


@given(values=values)
def test_a_made_member_is_the_dataclass_member(native: ModuleType, values: tuple[object, ...]):
    made = native.SlotMaker(TarMember, FIELDS)(*values)
    expected = TarMember(*values)  # type: ignore[arg-type]
    assert type(made) is TarMember
    assert made == expected and hash(made) == hash(expected) and repr(made) == repr(expected)
    assert dataclasses.astuple(made) == values
    assert gc.is_tracked(made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.name = "changed"  # type: ignore[misc]


def test_a_maker_takes_every_value_by_position_only(native: ModuleType) -> None:
    make = native.SlotMaker(TarMember, FIELDS)
    with pytest.raises(TypeError, match="exactly 13 values"):
        make("a", MemberKind.FILE)
    with pytest.raises(TypeError, match="exactly 13 values"):
        make(*range(12), offset=0)


class Other:
    __slots__ = ("x",)


@pytest.mark.parametrize(
    "names", [("name", "nonesuch"), ("name", "__class__"), (1,), ("name", "kind", "name")]
)
def test_a_maker_refuses_what_is_not_a_plain_slot(native: ModuleType, names: tuple) -> None:
    with pytest.raises(TypeError, match="not a plain slot"):
        native.SlotMaker(TarMember, names)


def test_events_are_made_alike(native: ModuleType) -> None:
    member = TarMember("a", MemberKind.FILE, 3)
    data = memoryview(b"xyz")
    whole = native.SlotMaker(WholeMember, ("member", "data"))(member, data)
    assert type(whole) is WholeMember and whole == WholeMember(member, data)
    start = native.SlotMaker(MemberStart, ("member", "data_offset"))(member, 512)
    assert type(start) is MemberStart and start == MemberStart(member, 512)


def test_the_compiled_reader_makes_its_events_by_slot_maker(native: ModuleType) -> None:
    """What the module uses when compiled (this suite also runs without)."""
    assert _compiled.native is None or type(slot_maker(WholeMember)) is native.SlotMaker


def test_without_the_compiled_module_the_dataclass_makes_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_compiled, "native", None)
    assert slot_maker(TarMember) is TarMember


def test_a_maker_refuses_a_slot_of_another_class(native: ModuleType) -> None:
    class Borrower:
        __slots__ = ("name",)

    Borrower.x = Other.x  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="not a plain slot"):
        native.SlotMaker(Borrower, ("x",))
