"""The optional compiled module (``_native.c``, built by setup.py), and whether to use it.

``built`` is the module when the install could compile it, else None. ``native`` is what the
hot paths use: ``built``, unless ``STC_PURE_PYTHON=1`` asks for the Python fallback (the test
suite runs both ways; README "Compiled hot paths").
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

T = TypeVar("T")


def _import_built() -> ModuleType | None:
    try:
        from . import _native
    except ImportError:  # not built: no C compiler or no Python headers at install time
        return None
    return _native


built = _import_built()
native = None if os.environ.get("STC_PURE_PYTHON") == "1" else built


def slot_maker(cls: type[T]) -> Callable[..., T]:
    """``cls``, a frozen dataclass with slots whose ``__init__`` only sets its fields, made
    from every field's value by position: by the compiled SlotMaker, which fills the slots
    without that ``__init__`` (one ``object.__setattr__`` per field, ~1.4 µs for a
    TarMember, against ~0.08 µs), else by ``cls`` itself."""
    if native is None:
        return cls
    names = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    maker: Callable[..., Any] = native.SlotMaker(cls, names)
    return maker
