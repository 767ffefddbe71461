"""``make_member``: a TarMember made by the compiled SlotMaker is the TarMember the dataclass
makes (equal, same hash and repr, still frozen, tracked by the cycle collector)."""

from __future__ import annotations

import dataclasses
import gc
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streaming_tar_compressor._compiled import built
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


@pytest.mark.parametrize("names", [("name", "nonesuch"), ("name", "__class__"), (1,)])
def test_a_maker_refuses_what_is_not_a_plain_slot(native: ModuleType, names: tuple) -> None:
    with pytest.raises(TypeError, match="not a plain slot"):
        native.SlotMaker(TarMember, names)
