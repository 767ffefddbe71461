"""The member index made while packing, from the tar blocks as they leave the compressors.

Without content digests, the tar thread adds each member to the index's page builder as it
writes its header, and hands on the pages the builder seals with its blocks. With them, it
notes each member as a row (the member, where its headers and its data start) with the
block its first header byte is in; the compression pool hashes the files whose data lies
wholly in its block (small files, in parallel) and the frame thread the rest, files whose
data crosses a block's end, as their blocks pass in order. Rows and pages reach the
IndexWriter in tar order. Memory is one index page and the rows or pages of the blocks in
flight.
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import Any

from ..core.manifest import IndexRef
from ..core.member_index import IndexWriter, Output, Page, PageBuilder, Row, page_builder
from ..models import MemberKind


def whole_file_digests(start: int, data: bytes, rows: list[Row]) -> list[bytes | None]:
    """The content SHA-256 of each file whose data lies wholly in the block that starts at
    stream offset ``start``; None for the other rows (run in the compression pool)."""
    end = start + len(data)
    digests: list[bytes | None] = []
    with memoryview(data) as view:
        for member, _, data_offset, _ in rows:
            size = member.size
            if member.kind is MemberKind.FILE and start <= data_offset <= end - size:
                at = data_offset - start
                digests.append(hashlib.sha256(view[at : at + size]).digest())
            else:
                digests.append(None)
    return digests


class PackIndexer:
    """Collects the rows or pages of one pack, in tar order, into an index written to ``out``."""

    def __init__(self, out: Output, name: str, *, content_sha256: bool) -> None:
        self.name = name
        self.content_sha256 = content_sha256
        self._writer = IndexWriter(out)
        # The tar thread's, between the rows before a resumed pack's start and finish().
        self.builder: PageBuilder | None = None if content_sha256 else page_builder()
        # Rows whose content digest is not known yet, in order, each with its hash so far.
        self._waiting: deque[tuple[Row, Any]] = deque()

    def add(self, rows: list[Row]) -> None:
        """Whole rows: the members before a resumed pack's start, hashed from their files."""
        assert not self._waiting, "whole rows come before the blocks"
        if self.builder is None:
            self._writer.add(rows)
            return
        for row in rows:
            self.builder.add(*row)
        self._writer.add_pages(self.builder.take())

    def add_block(
        self,
        start: int,
        data: bytes,
        rows: list[Row],
        pages: list[Page],
        digests: list[bytes | None] | None,
    ) -> None:
        """The block of the tar stream at ``start``, with the rows whose first header byte
        is in it and ``whole_file_digests`` of them (with content digests), or the pages
        the builder sealed before its end (without)."""
        if not self.content_sha256:
            self._writer.add_pages(pages)
            return
        assert digests is not None
        done: list[Row] = []
        for row, digest in zip(rows, digests, strict=True):
            if digest is not None and not self._waiting:
                done.append((row[0], row[1], row[2], digest))
            else:
                self._waiting.append((row, digest))
        end = start + len(data)
        with memoryview(data) as view:
            while self._waiting:
                (member, header_offset, data_offset, _), progress = self._waiting[0]
                if member.kind is not MemberKind.FILE:
                    digest = b""
                elif isinstance(progress, bytes):
                    digest = progress
                else:
                    progress = progress or hashlib.sha256()
                    data_end = data_offset + member.size
                    low, high = max(data_offset, start), min(data_end, end)
                    if low < high:
                        progress.update(view[low - start : high - start])
                    if data_end > end:
                        self._waiting[0] = (self._waiting[0][0], progress)
                        break
                    digest = progress.digest()
                self._waiting.popleft()
                done.append((member, header_offset, data_offset, digest))
        self._writer.add(done)

    def finish(self) -> IndexRef:
        """Writes the last page, the directory and the footer; the record for the manifest."""
        assert not self._waiting, "every file's data ends before the end-of-archive blocks"
        if self.builder is not None:
            self._writer.add_pages(self.builder.finish())
        return self._writer.finish().record(self.name, content_sha256=self.content_sha256)
