"""The exact command that continues an interrupted pack or unpack, ready to paste.

A pack's command comes from its checkpoint (sources, working directory and the options that
decide the archive's bytes), not from the command line that failed, so ``stc info`` can print
it days later from any folder.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
from typing import Any

from ..core.manifest import Manifest
from ..errors import StcError
from ..fs.journal import UnpackJournal
from ..pipeline.pack_state import read_state
from ..storage.archive import read_manifest_at
from ..storage.location import RemotePrefix, parse_prefix

# Largest first, binary before decimal at each step, as parse_size reads them back.
_UNITS = (("G", 1024**3), ("GB", 10**9), ("M", 1024**2), ("MB", 10**6), ("K", 1024), ("KB", 1000))


def exact_size(size: int) -> str:
    """``52428800`` → ``50M``, ``10**10`` → ``10GB``: a spelling ``parse_size`` reads back as
    exactly ``size``."""
    for unit, factor in _UNITS:
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _path_word(path: str) -> str:
    """A path the command line cannot take for an option: ``-x`` becomes ``./-x``."""
    return f"./{path}" if path.startswith("-") else path


def checkpoint_of(prefix: str) -> Manifest | None:
    """The prefix's manifest when it is an interrupted pack's checkpoint, else None."""
    with contextlib.suppress(StcError):
        manifest = read_manifest_at(prefix)
        if manifest is not None and not manifest.complete:
            return manifest
    return None


def pack_resume_command(prefix: str, manifest: Manifest) -> str | None:
    """``stc pack SRC… -o PREFIX -c … -l … --chunk-size … --block-size … --resume``, with a
    ``cd`` first when the pack ran elsewhere and named relative sources."""
    resume: Any = manifest.extra.get("resume")
    keys: list[str] = []
    if manifest.encryption is not None:  # an encrypted pack's resume point is in its state
        try:
            state = read_state(prefix)
        except StcError:
            return None
        resume = state.checkpoint.extra.get("resume")
        for recipient in state.recipients:
            keys += ["-r", recipient]
        keys += [] if state.recipients else ["--passphrase"]
    if not isinstance(resume, dict) or manifest.compression is None:
        return None
    sources = [str(source) for source in resume.get("sources", [])]
    if not sources:
        return None
    cwd = str(resume.get("cwd", ""))
    elsewhere = bool(cwd) and not _same_folder(cwd, os.getcwd())
    needs_cd = elsewhere and any(not os.path.isabs(source) for source in sources)
    local = not isinstance(parse_prefix(prefix), RemotePrefix)
    output = os.path.abspath(prefix) if needs_cd and local else prefix
    words = ["stc", "pack", *map(_path_word, sources), "-o", _path_word(output)]
    words += ["-c", manifest.compression.value]
    if manifest.level is not None:
        words += ["-l", str(manifest.level)]
    if manifest.chunk_size is not None:
        words += ["--chunk-size", exact_size(manifest.chunk_size)]
    if manifest.block_size is not None:
        words += ["--block-size", exact_size(manifest.block_size)]
    if resume.get("content_digests") is True:
        words.append("--content-digests")
    command = shlex.join([*words, *keys, "--resume"])
    return f"cd {shlex.quote(cwd)} && {command}" if needs_cd else command


def unpack_resume_command(args: argparse.Namespace, prefix: str) -> str | None:
    """When the failed ``stc unpack`` of ``prefix`` left a journal in its output folder: the
    same command with ``--resume``, which skips what is already restored."""
    with contextlib.suppress(StcError, OSError):
        manifest = read_manifest_at(prefix)
        if manifest is None or not os.path.exists(UnpackJournal(args.directory, manifest).path):
            return None
        words = ["stc", "unpack", _path_word(args.prefix), "-C", _path_word(args.directory)]
        if args.compression:
            words += ["-c", args.compression]
        for flag in ("same_owner", "same_permissions"):
            if getattr(args, flag):
                words.append("--" + flag.replace("_", "-"))
        if args.max_output_bytes is not None:
            words += ["--max-output-bytes", exact_size(args.max_output_bytes)]
        if args.max_members is not None:
            words += ["--max-members", str(args.max_members)]
        for identity in args.identity:
            words += ["-i", _path_word(identity)]
        if args.passphrase:
            words.append("--passphrase")
        return shlex.join([*words, "--resume"])
    return None


def _same_folder(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normpath(a) == os.path.normpath(b)
