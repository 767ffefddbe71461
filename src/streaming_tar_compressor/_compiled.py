"""The optional compiled module (``_native.c``, built by setup.py), and whether to use it.

``built`` is the module when the install could compile it, else None. ``native`` is what the
hot paths use: ``built``, unless ``STC_PURE_PYTHON=1`` asks for the Python fallback (the test
suite runs both ways; README "Compiled hot paths").
"""

from __future__ import annotations

import os
from types import ModuleType


def _import_built() -> ModuleType | None:
    try:
        from . import _native
    except ImportError:  # not built: no C compiler or no Python headers at install time
        return None
    return _native


built = _import_built()
native = None if os.environ.get("STC_PURE_PYTHON") == "1" else built
