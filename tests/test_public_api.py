"""The public surface: names pinned, one error tree, and the layering of imports kept."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import streaming_tar_compressor as stc
from streaming_tar_compressor import errors

PACKAGE = Path(stc.__file__).parent
SANS_IO_FORBIDDEN = {"os", "pathlib", "threading", "asyncio", "subprocess", "shutil", "io"}


def test_all_is_pinned():
    assert sorted(stc.__all__) == stc.__all__
    for name in stc.__all__:
        assert hasattr(stc, name), name
    for name in ("pack", "unpack", "unpack_stream", "verify", "list_members", "CompressionType"):
        assert name in stc.__all__


def test_the_command_line_starts_without_asyncio():
    """asyncio is ~40 ms of every ``stc`` start; the asyncio API loads when first used."""
    probe = (
        "import sys, streaming_tar_compressor.cli.main; "
        "assert 'asyncio' not in sys.modules, 'asyncio imported'; "
        "from streaming_tar_compressor import *; "
        "assert compress_with_chunks.__module__ == 'streaming_tar_compressor.aio'"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_an_unknown_attribute_is_an_attribute_error():
    assert not hasattr(stc, "compress")


def test_every_error_is_rooted_in_stc_error_with_a_known_exit_code():
    classes = [
        c
        for _, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, Exception) and c.__module__ == errors.__name__
    ]
    assert len(classes) >= 12
    for cls in classes:
        assert issubclass(cls, stc.StcError)
        assert isinstance(cls.exit_code, int) and 1 <= cls.exit_code < 128
    codes = {c.exit_code for c in classes}
    assert {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12} <= codes


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_and_codecs_stay_sans_io():
    for folder in ("core", "codecs"):
        for path in (PACKAGE / folder).glob("*.py"):
            bad = imported_modules(path) & SANS_IO_FORBIDDEN
            assert not bad, f"{path.name} imports {bad}"


def test_only_render_imports_rich():
    for path in PACKAGE.rglob("*.py"):
        if path.name != "render.py":
            assert "rich" not in imported_modules(path), path


def test_compression_type_values_and_parse():
    assert [c.value for c in stc.CompressionType] == ["gzip", "bzip2", "xz", "lz4", "zstd", "none"]
    assert stc.CompressionType.parse("ZSTD") is stc.CompressionType.ZSTD
    try:
        stc.CompressionType.parse("rar")
    except stc.UsageError as exc:
        assert "rar" in str(exc)
    else:
        raise AssertionError("parse('rar') must fail")
