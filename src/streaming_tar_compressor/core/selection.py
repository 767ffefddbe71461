"""Members named on the command line, as GNU tar selects them: a name selects the member of
that name and everything under it; with ``wildcards``, a pattern (``*``, ``?``, ``[…]``; ``*``
matches ``/`` too, GNU tar's default) selects what it matches and everything under that."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence

from ..errors import MemberNotFoundError, UsageError
from .member_index import IndexEntry, MemberIndex

_MAGIC = frozenset("*?[")


class Selection:
    """Which members a list of names or patterns selects; remembers which of them matched."""

    def __init__(self, patterns: Sequence[str], *, wildcards: bool = False) -> None:
        cleaned = [clean_name(pattern) for pattern in patterns]
        self.patterns = list(dict.fromkeys(cleaned))
        self.wildcards = wildcards
        self._matched: set[str] = set()

    def __contains__(self, name: str) -> bool:
        """Whether ``name`` or one of its leading folders is selected."""
        hits = [p for p in self.patterns if self._selects(p, name)]
        self._matched.update(hits)
        return bool(hits)

    def selects(self, name: str) -> bool:
        """Whether ``name`` is selected, without counting it as found."""
        return any(self._selects(pattern, name) for pattern in self.patterns)

    def unmatched(self) -> list[str]:
        return [p for p in self.patterns if p not in self._matched]

    def check_all_found(self) -> None:
        missing = self.unmatched()
        if missing:
            raise MemberNotFoundError(missing)

    def entries(self, index: MemberIndex) -> Iterator[IndexEntry]:
        """The selected members of ``index`` in tar order, reading only the pages that can
        hold them (every page for a pattern that starts with a wildcard)."""
        pages: set[int] = set()
        for pattern in self.patterns:
            fixed = self._fixed_part(pattern)
            every = range(len(index.entry_pages))
            pages.update(index.pages_holding(fixed, below=True) if fixed else every)
        for position in sorted(pages):
            for entry in index.page(position):
                if entry.name in self:
                    yield entry

    def _selects(self, pattern: str, name: str) -> bool:
        if not self.wildcards or not _MAGIC & set(pattern):
            return name == pattern or name.startswith(pattern + "/")
        if fnmatch.fnmatchcase(name, pattern):
            return True
        return any(
            fnmatch.fnmatchcase(name[:at], pattern) for at, char in enumerate(name) if char == "/"
        )

    def _fixed_part(self, pattern: str) -> str:
        """The leading folders of ``pattern`` that hold no wildcard: all it can select lies
        under them ("" when its first component has one)."""
        if not self.wildcards:
            return pattern
        fixed = []
        for part in pattern.split("/"):
            if _MAGIC & set(part):
                break
            fixed.append(part)
        return "/".join(fixed)


def clean_name(pattern: str) -> str:
    """``./a/b/`` and ``/a/b`` name what the archive stores as ``a/b`` (stc and GNU tar
    store names without a leading ``/``)."""
    cleaned = pattern.rstrip("/").lstrip("/")
    while cleaned.startswith("./"):
        cleaned = cleaned[2:].lstrip("/")
    if not cleaned or cleaned == ".":
        raise UsageError(f"{pattern!r} names no member; give a member's name as stc list shows it")
    return cleaned
