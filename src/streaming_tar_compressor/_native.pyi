"""Types of the compiled module built from _native.c (fs/ops.py describes its operations)."""

from collections.abc import Callable
from typing import Any

class OpThread:
    pending: int
    def submit(self, ops: list[tuple[Any, ...]]) -> None: ...
    def settle(self) -> tuple[int, int, tuple[Any, ...]] | None: ...
    def stop(self) -> None: ...
    def close(self) -> list[tuple[Any, ...]]: ...

def header_fields(
    block: bytes,
) -> tuple[int, bytes, bytes, int, int, int, int, bytes, bytes] | None: ...
def append_members(
    buffer: bytearray, items: tuple[tuple[bytes, str | None, int], ...]
) -> tuple[int, int]: ...
def plain_members(
    buffer: memoryview | bytes, start: int
) -> tuple[
    list[tuple[int, bytes, tuple[int, bytes, bytes, int, int, int, int, bytes, bytes]]], int
]: ...

class dir_stat:
    st_mode: int
    st_ino: int
    st_dev: int
    st_nlink: int
    st_uid: int
    st_gid: int
    st_size: int
    st_mtime_ns: int
    st_ctime_ns: int

def lstat_names(
    directory: str, names: list[str], check_access: bool
) -> list[tuple[dir_stat | int, bool]]: ...
def scan_tree(
    directory: str, member_length: int, watch: tuple[int, int, tuple[bytes, bytes]] | None
) -> tuple[int, int, int, tuple[str, int] | None, list[str]]: ...
def member_header(
    member: Any, kinds: tuple[Any, ...], typeflags: bytes, offset: int, builder: Any
) -> bytes | None: ...
def byte_sum(data: bytes | bytearray | memoryview) -> int: ...
def index_page(
    rows: list[tuple[Any, int, int, bytes]], kinds: tuple[Any, ...], max_rows: int, max_text: int
) -> tuple[int, bytes, bool]: ...
def untracked(row: tuple[Any, ...]) -> tuple[Any, ...]: ...

class SlotMaker:
    def __init__(self, cls: type, names: tuple[str, ...]) -> None: ...
    def __call__(self, *values: Any) -> Any: ...

class PageBuilder:
    def __init__(
        self,
        kinds: tuple[Any, ...],
        max_rows: int,
        max_text: int,
        compress: Callable[[bytes], bytes],
    ) -> None: ...
    def add(
        self, member: Any, header_offset: int, data_offset: int, digest: bytes = b"", /
    ) -> None: ...
    def take(self) -> list[tuple[int, bytes, bool, str, str]]: ...
    def finish(self) -> list[tuple[int, bytes, bool, str, str]]: ...
