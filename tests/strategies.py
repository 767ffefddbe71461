"""Shared hypothesis strategies."""

from __future__ import annotations

from hypothesis import strategies as st

_NAME = st.text(alphabet="abcdefgé_-. 0123456789", min_size=1, max_size=12).filter(
    lambda n: n not in (".", "..")
)


@st.composite
def file_trees(draw: st.DrawFn, max_files: int = 8, max_size: int = 40_000) -> dict[str, bytes]:
    """Relative path → bytes; no path is both a file and a folder of another."""
    paths = draw(st.lists(st.lists(_NAME, min_size=1, max_size=3), max_size=max_files))
    tree: dict[str, bytes] = {}
    for parts in paths:
        path = "/".join(parts)
        prefixes = {"/".join(parts[:i]) for i in range(1, len(parts))}
        clash = any(p in tree for p in prefixes) or any(k.startswith(path + "/") for k in tree)
        if clash or path in tree:
            continue
        kind = draw(st.sampled_from(["empty", "text", "random", "zeros"]))
        size = draw(st.integers(0, max_size))
        if kind == "empty":
            data = b""
        elif kind == "text":
            data = (b"line of text %d\n" * (size // 16 + 1))[:size]
        elif kind == "zeros":
            data = bytes(size)
        else:
            data = draw(st.binary(min_size=min(size, 2000), max_size=min(size, 2000)))
        tree[path] = data
    return tree
