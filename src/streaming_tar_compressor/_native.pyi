"""Types of the compiled module built from _native.c (fs/ops.py describes its operations)."""

from typing import Any

def run_ops(ops: list[tuple[Any, ...]]) -> tuple[int, int] | None: ...
def header_fields(
    block: bytes,
) -> tuple[int, bytes, bytes, int, int, int, int, bytes, bytes] | None: ...
def read_file(path: str, size: int) -> bytes: ...
def plain_members(
    buffer: memoryview | bytes, start: int
) -> tuple[
    list[tuple[int, bytes, tuple[int, bytes, bytes, int, int, int, int, bytes, bytes]]], int
]: ...
