"""``stc``: pack, unpack, verify, list and describe split archives.

Every error of ours becomes one line on stderr and its class's exit code; no traceback for a
user's mistake.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import getpass
import io
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from .. import __version__, sync
from ..codecs import codec_for
from ..core.detect import HEAD_SIZE, detect_compression
from ..core.manifest import Manifest
from ..core.member_index import PageColumns
from ..encryption import identities_from, looks_like_a_key, read_recipients
from ..encryption.archive import OpenedArchive
from ..errors import (
    ArchiveBusyError,
    ArchiveDamagedError,
    ChecksumMismatchError,
    MissingChunkError,
    OutputError,
    SourceChangedError,
    SourceError,
    StcError,
    UsageError,
)
from ..models import CompressionType
from ..pipeline import listing
from ..pipeline.diff import Difference
from ..pipeline.pack import restore_command
from ..pipeline.unpack import open_encrypted
from ..progress import NullProgress, Progress
from ..storage.archive import open_source, read_head
from ..storage.local import MANIFEST_SUFFIX, READ_SIZE, sha256sum_path
from ..storage.location import RemotePrefix, parse_prefix
from .resume_hints import checkpoint_of, pack_resume_command, unpack_resume_command
from .tv import Listed, TvLines

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(I?B?)", re.IGNORECASE)
_PART_SUFFIX = re.compile(r"\.part\d+$")
LIST_BATCH = 4096  # tar -tv lines printed at a time


def parse_size(text: str) -> int:
    """``50M`` → 52428800. K/M/G/T and KiB… are powers of 1024, KB/MB… of 1000, as ``split -b``."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise UsageError(f"cannot read {text!r} as a size; write e.g. 512K, 50M, 1G")
    number, unit, suffix = match.groups()
    base = 1000 if suffix.upper() == "B" and unit else 1024
    value = int(float(number) * base ** "_KMGT".index(unit.upper()) if unit else float(number))
    if value < 1:
        raise UsageError(f"size {text!r} must be at least one byte")
    return value


def _size_argument(text: str) -> int:
    """parse_size for argparse, which reports ArgumentTypeError as a usage error (exit 2)."""
    try:
        return parse_size(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _chunk_size_argument(text: str) -> int | str:
    """A size, or ``auto``."""
    return "auto" if text.strip().lower() == "auto" else _size_argument(text)


def _count_argument(text: str) -> int:
    """A whole number of at least 1, for argparse (a usage error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def normalize_prefix(text: str) -> str:
    """Accept the prefix, its manifest or one of its parts: ``backup.part0003`` → ``backup``."""
    for suffix in (MANIFEST_SUFFIX, ".sha256"):
        if text.endswith(suffix):
            return text[: -len(suffix)]
    return _PART_SUFFIX.sub("", text)


class ArgumentsError(UsageError):
    """A command line argparse refused; carries the usage text it prints beside the error."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """Raises ArgumentsError instead of exiting, so ``--json`` can report a usage error too."""

    def error(self, message: str) -> NoReturn:
        raise ArgumentsError(f"{message} (see '{self.prog} --help')", self.format_usage())


def _parse(parser: argparse.ArgumentParser, arguments: list[str]) -> argparse.Namespace:
    """``parse_args``, except that member names may also follow options (``stc list PREFIX
    --wildcards '*.c'``): argparse takes positionals only in one run."""
    args, extras = parser.parse_known_args(arguments)
    if extras and hasattr(args, "members") and not any(e.startswith("-") for e in extras):
        args.members = [*args.members, *extras]
    elif extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _add_selection(command: argparse.ArgumentParser, what: str) -> None:
    """``MEMBER…`` and ``--wildcards``, read the same way by list and unpack."""
    command.add_argument("members", metavar="MEMBER", nargs="*", help=what)
    command.add_argument(
        "--wildcards",
        action="store_true",
        help="MEMBERs are glob patterns (* ? [...]; * matches / too), as GNU tar's --wildcards",
    )


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    common.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    common.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="the S3 API endpoint of an S3-compatible store, e.g. http://127.0.0.1:9000 "
        "(default: AWS_ENDPOINT_URL)",
    )
    codecs = [kind.value for kind in CompressionType]
    keys = _Parser(add_help=False)
    keys.add_argument(
        "-i",
        "--identity",
        action="append",
        default=[],
        metavar="FILE",
        help="an age identity file (stc keygen, age-keygen) that opens an encrypted archive; "
        "repeatable",
    )
    keys.add_argument(
        "--passphrase",
        action="store_true",
        help="open an encrypted archive with a passphrase, read from the terminal "
        "(or from the file STC_PASSPHRASE_FILE names)",
    )

    parser = _Parser(
        prog="stc",
        description="Pack files and directories into a compressed tar stream split into "
        "numbered, SHA-256-checked chunks while compressing, and restore them.",
        epilog="Exit codes: 0 ok, 1 other error, 2 usage, 3 source missing/unreadable, "
        "4 manifest invalid, 5 chunk missing, 6 checksum mismatch/damaged archive, "
        "7 corrupt or truncated stream, 8 unsafe member refused, 9 codec mismatch, "
        "10 output not writable, 11 source changed while packing, "
        "12 --max-output-bytes or --max-members exceeded, 13 object store refused or "
        "unreachable, 14 cannot decrypt (no key fits, wrong passphrase, altered archive).",
    )
    parser.add_argument("--version", action="version", version=f"stc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pack = commands.add_parser(
        "pack",
        parents=[common],
        help="pack sources into PREFIX.part0000…",
        description="Pack files and directories into PREFIX.part0000, PREFIX.part0001, … "
        "plus PREFIX.manifest.json and PREFIX.sha256.",
    )
    pack.add_argument("sources", nargs="+", metavar="SRC", help="files and directories to pack")
    pack.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="PREFIX",
        help="output prefix, e.g. backups/home (writes backups/home.part0000…)",
    )
    pack.add_argument(
        "-c", "--compression", default="gzip", choices=codecs, help="codec (default: gzip)"
    )
    pack.add_argument("-l", "--level", type=int, help="compression level (default per codec)")
    pack.add_argument(
        "--chunk-size",
        type=_chunk_size_argument,
        metavar="SIZE",
        help="bytes per chunk, e.g. 50M, 1G, or 'auto' (8M..64M from the input's size); "
        "default 50M, 'auto' for object-store URLs",
    )
    pack.add_argument(
        "--block-size",
        type=_size_argument,
        metavar="SIZE",
        help="uncompressed bytes per independently compressed block "
        "(default per codec, e.g. 4M for gzip)",
    )
    pack.add_argument(
        "-j", "--workers", type=int, metavar="N", help="compression threads (default: one per core)"
    )
    pack.add_argument(
        "--content-digests",
        action="store_true",
        help="put each file's SHA-256 in the member index (PREFIX.index), so stc diff "
        "compares content without reading the chunks; costs one more hash of every byte",
    )
    pack.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="replace an existing archive with the same prefix",
    )
    pack.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted pack from its last complete chunk (same sources and "
        "options); an archive already complete is left as it is",
    )
    pack.add_argument(
        "-r",
        "--encrypt-to",
        action="append",
        default=[],
        metavar="RECIPIENT",
        help="encrypt with age to this recipient (age1…, from stc keygen or age-keygen); "
        "repeatable: any of their keys opens the archive",
    )
    pack.add_argument(
        "-R",
        "--recipients-file",
        action="append",
        default=[],
        metavar="FILE",
        help="encrypt to the recipients listed in FILE (one age1… a line, # comments)",
    )
    pack.add_argument(
        "--passphrase",
        action="store_true",
        help="encrypt with age under a passphrase, read twice from the terminal (or from "
        "the file STC_PASSPHRASE_FILE names); not with recipients",
    )

    unpack = commands.add_parser(
        "unpack",
        parents=[common, keys],
        help="restore an archive into a directory",
        description="Restore PREFIX.part* into DIR, verifying every chunk against the manifest. "
        "PREFIX '-' reads one compressed stream from stdin (no manifest, no verification).",
    )
    unpack.add_argument("prefix", metavar="PREFIX", help="archive prefix, or - for stdin")
    _add_selection(
        unpack,
        "extract only these members (a folder: its subtree), reading only the blocks that "
        "hold them",
    )
    unpack.add_argument(
        "-C",
        "--directory",
        default=".",
        metavar="DIR",
        help="output directory, created if missing (default: .)",
    )
    unpack.add_argument(
        "-c",
        "--compression",
        choices=codecs,
        help="expected codec; an archive of another codec is an error "
        "(default: detect from the first bytes)",
    )
    unpack.add_argument(
        "--no-verify", action="store_true", help="skip the SHA-256 checks against the manifest"
    )
    unpack.add_argument(
        "--same-owner", action="store_true", help="restore owners too (as root only, like GNU tar)"
    )
    unpack.add_argument(
        "-p",
        "--same-permissions",
        "--preserve-permissions",
        action="store_true",
        help="restore permission bits as stored, not less the umask (setuid, setgid and sticky "
        "are dropped all the same)",
    )
    unpack.add_argument(
        "--max-output-bytes",
        type=_size_argument,
        metavar="SIZE",
        help="stop (exit 12) before file data would pass SIZE, e.g. 10G (default: no cap)",
    )
    unpack.add_argument(
        "--max-members",
        type=_count_argument,
        metavar="N",
        help="stop (exit 12) before member N+1: files, folders and links (default: no cap)",
    )
    unpack.add_argument(
        "--follow",
        action="store_true",
        help="PREFIX is a store URL another machine may still be packing to: restore chunk by "
        "chunk as its checkpoints name them, until the final manifest",
    )
    unpack.add_argument(
        "--follow-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="with --follow: give up after this long without a new chunk (default 600)",
    )
    unpack.add_argument(
        "--resume",
        action="store_true",
        help="after an interrupted unpack into DIR: skip the members it restored and decode "
        "only from the block that holds the first missing one (chunks read are still verified; "
        "whole-stream checks are skipped); with nothing to resume, a normal unpack",
    )

    verify = commands.add_parser(
        "verify",
        parents=[common, keys],
        help="check every chunk against the manifest",
        description="Check size and SHA-256 of every chunk and of the whole stream, "
        "reporting every missing, extra, short or corrupt chunk.",
    )
    verify.add_argument("prefix", metavar="PREFIX")
    verify.add_argument(
        "--deep",
        action="store_true",
        help="also decode every block and walk the tar, writing nothing",
    )

    listing = commands.add_parser(
        "list",
        parents=[common, keys],
        help="list the members like tar -tv",
        description="List the archive's members like tar -tv: from its member index when it "
        "has one (no chunk is read), else decoding without writing.",
    )
    listing.add_argument("prefix", metavar="PREFIX")
    _add_selection(listing, "list only these members (a folder: its subtree), as tar -t does")
    listing.add_argument(
        "--json-lines",
        action="store_true",
        help="one JSON object per member and line, written as they are read",
    )
    listing.add_argument("-c", "--compression", choices=codecs, help="expected codec")

    cat = commands.add_parser(
        "cat",
        parents=[common, keys],
        help="write one member's content to stdout",
        description="Write one regular file's content to stdout, reading only the blocks "
        "that hold it (checked against their SHA-256, and the content against the index's "
        "when it has one). A hardlink gives its target's content.",
    )
    cat.add_argument("prefix", metavar="PREFIX")
    cat.add_argument("member", metavar="MEMBER")

    comparing = commands.add_parser(
        "diff",
        parents=[common, keys],
        help="compare an archive with its sources or a restored tree",
        description="Report what differs between the archive and the files it was packed from "
        "(SRC as given to stc pack) or, with -C DIR, the tree restored into DIR: + new, "
        "- missing, M changed (type, size, mode, mtime, link, content). Content is compared "
        "by the index's SHA-256 when the pack recorded them (no chunk is read), else against "
        "the archive's bytes. Exit 0 when identical, 1 when they differ.",
    )
    comparing.add_argument("prefix", metavar="PREFIX")
    comparing.add_argument("sources", metavar="SRC", nargs="*", help="what stc pack was given")
    comparing.add_argument(
        "-C", "--directory", metavar="DIR", help="compare the tree restored into DIR instead"
    )
    comparing.add_argument(
        "--json-lines", action="store_true", help="one JSON object per difference and line"
    )

    index = commands.add_parser(
        "index",
        parents=[common],
        help="rebuild the member index by decoding once",
        description="Write PREFIX.index for an archive that has none (packed before there was "
        "one) or whose index was lost or damaged: the stream is decoded once, every chunk "
        "verified, and the manifest rewritten to pin the new index.",
    )
    index.add_argument("prefix", metavar="PREFIX")
    index.add_argument(
        "--content-digests",
        action="store_true",
        help="put each file's SHA-256 in the index (as stc pack --content-digests)",
    )

    info = commands.add_parser(
        "info",
        parents=[common, keys],
        help="summarise the manifest and the restore command",
        description="Summarise the manifest, with the command that restores the archive "
        "using only cat and GNU tar.",
    )
    info.add_argument("prefix", metavar="PREFIX")

    keygen = commands.add_parser(
        "keygen",
        parents=[common],
        help="make an age key pair for encrypted archives",
        description="Write a new age X25519 identity to FILE (mode 0600; never over an existing "
        "file) and print its recipient (age1…), the public half to encrypt to with "
        "stc pack -r. The file is what age-keygen writes: age -d -i FILE reads it too.",
    )
    keygen.add_argument("-o", "--output", required=True, metavar="FILE")

    unlock = commands.add_parser(
        "unlock",
        parents=[common],
        help="remove the lock a dead pack to a store left",
        description="Remove PREFIX's lock object (.NAME.lock) that a pack to an object store "
        "left when it died, so another pack can start before the lock goes stale (30 min). "
        "A lock of a pack still running on this host is kept. Local prefixes need no unlock.",
    )
    unlock.add_argument("prefix", metavar="PREFIX")
    unlock.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="remove the lock even if it was refreshed within 30 minutes (its pack ran on "
        "another machine and you know it stopped)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # Member names that are not UTF-8 print as their original bytes, as tar prints them.
        sys.stdout.reconfigure(errors="surrogateescape")
    try:
        args = _parse(build_parser(), arguments)
    except ArgumentsError as exc:
        if _asks_for_json(arguments):
            _print_json(_error_document(exc))
        print(exc.usage, end="", file=sys.stderr)
        print(f"stc: error: {exc}", file=sys.stderr)
        return exc.exit_code
    # What is alive now (modules, classes) lives until exit: out of the collector's sight, the
    # full collections a tree of many members triggers no longer walk it (unpack ~5 % faster).
    gc.freeze()
    if args.endpoint_url:  # what the store layer reads, the S3-only name first
        os.environ["AWS_ENDPOINT_URL_S3"] = os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
    try:
        return int(_COMMANDS[args.command](args))
    except StcError as exc:
        hint = _resume_hint(args, exc)
        if args.json:
            _print_json({**_error_document(exc), **({"resume_command": hint} if hint else {})})
        print(f"stc: error: {exc}{_then(hint)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        hint = _resume_hint(args, None)
        if args.json:
            document = {"ok": False, "error": "interrupted", "type": "KeyboardInterrupt"}
            _print_json(
                {**document, "exit_code": 130, **({"resume_command": hint} if hint else {})}
            )
        print(f"stc: interrupted{_then(hint)}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0
    except Exception as exc:
        # A bug of ours: the traceback follows, but a script still gets its one document.
        if args.json:
            _print_json({"ok": False, "error": f"internal error: {exc!r}", "exit_code": 1})
        raise


def _asks_for_json(arguments: list[str]) -> bool:
    """``--json`` (or an abbreviation argparse would accept) before any ``--``."""
    options = arguments[: arguments.index("--")] if "--" in arguments else arguments
    return any(len(arg) > 3 and "--json".startswith(arg) for arg in options)


def _then(resume_command: str | None) -> str:
    """The resume command as the end of the one error line."""
    return f"; to go on from there: {resume_command}" if resume_command else ""


def _error_document(error: StcError) -> dict[str, Any]:
    # The class a script can look up: the CLI's own subclasses report their public parent.
    public = next(c for c in type(error).__mro__ if c.__module__ == StcError.__module__)
    return {
        "ok": False,
        "error": str(error),
        "type": public.__name__,
        "exit_code": error.exit_code,
    }


# Failures that something outside the run can clear (space freed, a chunk fetched again, a
# permission fixed), after which the same command with --resume goes on. Anything else would
# fail the same way again, or is not this run's to resume (another pack holds the prefix).
_RESUMABLE = (OutputError, MissingChunkError, ChecksumMismatchError, SourceError)
_NOT_RESUMABLE = (ArchiveBusyError, SourceChangedError)


def _resume_hint(args: argparse.Namespace, error: StcError | None) -> str | None:
    """The command that continues a pack or unpack this failure (None: Ctrl-C) stopped."""
    if error is not None and (
        not isinstance(error, _RESUMABLE) or isinstance(error, _NOT_RESUMABLE)
    ):
        return None
    if args.command == "pack":
        checkpoint = checkpoint_of(args.output)
        return pack_resume_command(args.output, checkpoint) if checkpoint else None
    if args.command == "unpack" and args.prefix != "-":
        return unpack_resume_command(args, normalize_prefix(args.prefix))
    return None


@contextlib.contextmanager
def _progress(args: argparse.Namespace, verb: str) -> Iterator[Progress]:
    if args.quiet or args.json or not sys.stderr.isatty():
        yield NullProgress()
        return
    from .render import ProgressBar

    with ProgressBar(verb) as bar:
        yield bar


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet and not args.json:
        print(text)


def _print_json(document: dict[str, Any]) -> None:
    print(json.dumps(document, indent=2))


def _cmd_pack(args: argparse.Namespace) -> int:
    started = time.monotonic()
    with _progress(args, "packing") as progress:
        result = sync.pack(
            args.sources,
            args.output,
            compression=args.compression,
            level=args.level,
            chunk_size=args.chunk_size,
            block_size=args.block_size,
            workers=args.workers,
            progress=progress,
            force=args.force,
            resume=args.resume,
            content_digests=args.content_digests,
            recipients=_recipients(args),
            passphrase=_passphrase(confirm=True) if args.passphrase else None,
        )
    seconds = time.monotonic() - started
    manifest = result.manifest
    for skipped in result.skipped:
        print(f"stc: warning: skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    if args.json:
        _print_json(
            {
                "ok": True,
                "prefix": args.output,
                "compression": args.compression,
                "level": manifest.level,
                "chunks": [c.path for c in result.chunks],
                "total_chunks": manifest.total_chunks,
                "compressed_size": manifest.compressed_size,
                "uncompressed_size": manifest.uncompressed_size,
                "sha256": manifest.sha256,
                "seconds": round(seconds, 3),
                "skipped": [s.path for s in result.skipped],
                "resumed_chunks": result.resumed_chunks,
            }
        )
        return 0
    raw, packed = manifest.uncompressed_size or 0, manifest.compressed_size or 0
    if result.resumed_chunks == manifest.total_chunks:
        _say(args, f"{args.output} was already complete: nothing to resume")
    elif result.resumed_chunks:
        _say(args, f"resumed after chunk {result.resumed_chunks - 1}: kept what was written")
    _say(
        args,
        # Encrypted, the tar stream's size is sealed: the public manifest does not hold it.
        (f"packed {human_size(raw)}" if manifest.encryption is None else "packed")
        + f" into {manifest.total_chunks} chunk(s), {human_size(packed)} ({args.compression}"
        + (", encrypted with age" if manifest.encryption is not None else "")
        + f") in {seconds:.1f}s: "
        f"{result.chunks[0].path} … {result.chunks[-1].path}",
    )
    _say(args, f"restore without stc: {manifest.restore_command}")
    return 0


def _writing(args: argparse.Namespace) -> dict[str, Any]:
    """How unpack writes files: owners, modes and the caps against bombs."""
    return {
        "same_owner": args.same_owner,
        "same_permissions": args.same_permissions,
        "max_output_bytes": args.max_output_bytes,
        "max_members": args.max_members,
    }


def _extract_members(args: argparse.Namespace, started: float) -> int:
    """``stc unpack PREFIX MEMBER…``: the selection alone, by ranged reads."""
    refused = [
        option
        for option, given in (
            ("-", args.prefix == "-"),
            ("--resume", args.resume),
            ("--follow", args.follow),
            ("--no-verify", args.no_verify),
        )
        if given
    ]
    if refused:
        raise UsageError(
            f"naming members to extract reads them by range from an archive with a manifest "
            f"and checks every block: not with {', '.join(refused)}"
        )
    with _progress(args, "extracting") as progress:
        result = sync.extract(
            normalize_prefix(args.prefix),
            args.members,
            args.directory,
            wildcards=args.wildcards,
            compression=args.compression,
            progress=progress,
            **_writing(args),
            **_keys(args),
        )
    seconds = time.monotonic() - started
    if args.json:
        _print_json(
            {
                "ok": True,
                "directory": args.directory,
                "members": result.members,
                "blocks_read": result.blocks_read,
                "compressed_bytes": result.compressed_bytes,
                "indexed": result.indexed,
                "verified": True,
                "seconds": round(seconds, 3),
            }
        )
        return 0
    how = (
        f"{result.blocks_read} block(s), {human_size(result.compressed_bytes)} read, every "
        "block verified"
        if result.indexed
        else f"all {human_size(result.compressed_bytes)} decoded (no member index), every "
        "chunk verified"
    )
    _say(
        args,
        f"extracted {result.members} member(s) into {args.directory} from {how}, in {seconds:.1f}s",
    )
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    started = time.monotonic()
    with _progress(args, "indexing") as progress:
        manifest = sync.rebuild_index(
            normalize_prefix(args.prefix), content_digests=args.content_digests, progress=progress
        )
    ref = manifest.index
    assert ref is not None
    seconds = time.monotonic() - started
    if args.json:
        _print_json({"ok": True, **ref.to_json(), "seconds": round(seconds, 3)})
        return 0
    _say(
        args,
        f"indexed {ref.members} member(s) into {ref.name} ({human_size(ref.size)}) in "
        f"{seconds:.1f}s, every chunk verified",
    )
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    """Exit 0 when the archive holds exactly the sources, 1 when they differ (as diff)."""
    found = sync.diff(
        normalize_prefix(args.prefix), args.sources, directory=args.directory, **_keys(args)
    )
    differences = 0
    documents: list[dict[str, Any]] = []
    for difference in found:
        differences += 1
        if args.json:
            documents.append(_difference_json(difference))
        elif args.json_lines:
            print(json.dumps(_difference_json(difference)))
        else:
            print(_difference_line(difference))
    if args.json:
        _print_json({"ok": True, "identical": not differences, "differences": documents})
    return 1 if differences else 0


def _difference_json(difference: Difference) -> dict[str, Any]:
    return {"name": difference.name, "change": difference.change, "fields": difference.fields}


def _difference_line(difference: Difference) -> str:
    """``+ name`` new, ``- name`` missing, ``M name (size, content)`` changed."""
    mark = {"new": "+", "missing": "-", "changed": "M"}[difference.change]
    fields = f" ({', '.join(difference.fields)})" if difference.fields else ""
    return f"{mark} {difference.name}{fields}"


def _cmd_cat(args: argparse.Namespace) -> int:
    with sync.open_member(normalize_prefix(args.prefix), args.member, **_keys(args)) as member:
        out = sys.stdout.buffer
        while piece := member.read(READ_SIZE):
            out.write(piece)
        out.flush()
    return 0


def _cmd_unpack(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if args.prefix == "-" and (args.resume or args.follow):
        option = "--resume" if args.resume else "--follow"
        raise UsageError(f"{option} needs an archive prefix: a stream from stdin has no manifest")
    if args.members:
        return _extract_members(args, started)
    with _progress(args, "unpacking") as progress:
        if args.prefix == "-":
            stdin = sys.stdin.buffer
            result = sync.unpack_stream(
                iter(lambda: stdin.read(READ_SIZE), b""),
                args.directory,
                compression=args.compression,
                progress=progress,
                **_writing(args),
            )
        else:
            result = sync.unpack(
                normalize_prefix(args.prefix),
                args.directory,
                compression=args.compression,
                verify_checksum=not args.no_verify,
                progress=progress,
                **_writing(args),
                resume=args.resume,
                follow=args.follow,
                follow_timeout=args.follow_timeout,
                **_keys(args),
            )
    seconds = time.monotonic() - started
    if args.json:
        _print_json(
            {
                "ok": True,
                "directory": args.directory,
                "members": result.members,
                "compressed_bytes": result.compressed_bytes,
                "verified": result.verified,
                "compression": result.compression.value if result.compression else None,
                "resumed": result.resumed,
                "skipped_members": result.skipped_members,
                "seconds": round(seconds, 3),
            }
        )
        return 0
    if not result.verified and not args.quiet:
        why = "--no-verify" if args.no_verify else "no manifest"
        print(f"stc: warning: chunks were not verified ({why})", file=sys.stderr)
    _say(
        args,
        f"restored {result.members} member(s) into {args.directory} "
        f"from {human_size(result.compressed_bytes)} in {seconds:.1f}s"
        + (", every chunk verified" if result.verified else "")
        + (
            f"; resumed after {result.skipped_members} member(s) already restored "
            "(whole-stream checks skipped)"
            if result.resumed
            else ""
        ),
    )
    return 0


def _recipients(args: argparse.Namespace) -> list[str]:
    """``--encrypt-to`` and the lines of each ``--recipients-file``."""
    recipients = list(args.encrypt_to)
    for path in args.recipients_file:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the recipients file {path!r}: {exc}") from None
        found = read_recipients(text, path)
        if not found:
            raise UsageError(f"{path} lists no recipient")
        recipients += [str(recipient) for recipient in found]
    return recipients


def _keys(args: argparse.Namespace) -> dict[str, Any]:
    """What opens an encrypted archive: ``-i`` files and ``--passphrase``."""
    if any(looks_like_a_key(path) for path in args.identity):
        raise UsageError(
            "-i takes an identity file: a key on the command line is visible to every user "
            "of this machine (ps); write it to a file (mode 0600) and give that"
        )
    return {
        "identities": args.identity,
        "passphrase": _passphrase(confirm=False) if args.passphrase else None,
    }


def _passphrase(*, confirm: bool) -> str:
    """From the file STC_PASSPHRASE_FILE names (its first line), else typed at the terminal,
    twice when it will encrypt (a typo would lock the archive for good)."""
    path = os.environ.get("STC_PASSPHRASE_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read STC_PASSPHRASE_FILE {path!r}: {exc}") from None
    if not sys.stdin.isatty():
        raise UsageError("--passphrase reads from a terminal; without one, set STC_PASSPHRASE_FILE")
    passphrase = getpass.getpass("passphrase: ")
    if confirm and getpass.getpass("passphrase again: ") != passphrase:
        raise UsageError("the two passphrases differ")
    return passphrase


def _cmd_keygen(args: argparse.Namespace) -> int:
    identity = sync.keygen(args.output)
    if args.json:
        _print_json(
            {"ok": True, "identity_file": args.output, "recipient": str(identity.recipient)}
        )
        return 0
    _say(args, f"wrote {args.output} (keep it secret, keep a copy); its recipient:")
    print(identity.recipient)  # printed even with -q: it is the result
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    with _progress(args, "verifying") as progress:
        report = sync.verify(
            normalize_prefix(args.prefix), deep=args.deep, progress=progress, **_keys(args)
        )
    if args.json:
        document: dict[str, Any] = {
            "ok": report.ok,
            "chunks_checked": report.chunks_checked,
            "bytes_checked": report.bytes_checked,
            "deep": report.deep,
            "members_checked": report.members_checked,
            "blocks_checked": report.blocks_checked,
            "index_checked": report.index_checked,
            "problems": report.problems,
            "from_metadata": report.from_metadata,
            "requests": report.requests,
            "downloaded_chunks": report.downloaded,
        }
        if not report.ok:
            # The error goes into the report: stdout holds one JSON document, always.
            error = ArchiveDamagedError(report.problems)
            _print_json({**document, **_error_document(error)})
            print(f"stc: error: {error}", file=sys.stderr)
            return error.exit_code
        _print_json(document)
    elif report.ok:
        how = f", {report.members_checked} members decoded" if report.deep else ""
        if report.blocks_checked:
            how += f", {report.blocks_checked} block(s) checked by their SHA-256"
        if report.from_metadata:
            fetched = (
                f"{report.downloaded} chunk(s) downloaded"
                if report.downloaded
                else ("nothing downloaded")
            )
            how = f" by stored size and SHA-256 ({report.requests} requests, {fetched})"
        _say(
            args,
            f"ok: {report.chunks_checked} chunk(s), {human_size(report.bytes_checked)}"
            + (" and the member index" if report.index_checked else "")
            + f" match the manifest{how}",
        )
    else:
        for problem in report.problems:
            print(f"stc: {problem}", file=sys.stderr)
    report.raise_for_problems()
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    stated = None if args.compression is None else CompressionType.parse(args.compression)
    prefix = normalize_prefix(args.prefix)
    keys = _keys(args)
    identities = identities_from(keys["identities"], keys["passphrase"])
    if not args.json_lines and not args.json:
        tv = TvLines()
        batches = listing.listed_batches(
            prefix,
            compression=stated,
            members=args.members,
            wildcards=args.wildcards,
            size=LIST_BATCH,
            identities=identities,
        )
        for batch in batches:
            lines = tv.page_lines(batch) if isinstance(batch, PageColumns) else tv.lines(batch)
            print("\n".join(lines))
        return 0
    members = listing.listed(
        prefix,
        compression=stated,
        members=args.members,
        wildcards=args.wildcards,
        identities=identities,
    )
    if args.json_lines:
        for member in members:
            print(json.dumps(_member_json(member)))
        return 0
    _print_json({"ok": True, "members": [_member_json(m) for m in members]})
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    prefix = normalize_prefix(args.prefix)
    manifest = sync.read_manifest(prefix)
    resume = None if manifest.complete else pack_resume_command(prefix, manifest)
    keys = _keys(args)
    identities = identities_from(keys["identities"], keys["passphrase"])
    # With a key, an encrypted archive's sealed part is opened (its manifest authenticated).
    opened = open_encrypted(open_source(prefix), identities) if identities else None
    if args.json:
        extra: dict[str, Any] = {"resume_command": resume} if resume else {}
        if opened is not None:
            extra["sealed"] = json.loads(opened.secret.to_json())
        _print_json({"ok": True, **json.loads(manifest.to_json()), **extra})
        return 0
    for label, value in _info_lines(prefix, manifest, resume, opened):
        print(f"{label + ':':<13} {value}")
    return 0


def _info_lines(
    prefix: str, manifest: Manifest, resume: str | None, opened: OpenedArchive | None = None
) -> list[tuple[str, str]]:
    """What the manifest knows, and nothing it does not: an interrupted pack has no stream
    hash or restore command yet, a seed manifest no codec or block index; an encrypted one
    opened with its key, what its sealed part holds too."""
    name = os.path.basename(prefix)
    packed = sum(chunk.size for chunk in manifest.chunks)
    raw = opened.secret.uncompressed_size if opened else manifest.uncompressed_size
    so_far = "" if manifest.complete else " so far"
    codec = manifest.compression or _detected_codec(prefix)
    if manifest.compression is not None:
        level = f" level {manifest.level}" if manifest.level is not None else ""
        compression = f"{manifest.compression.value}{level}"
    elif codec is not None:
        compression = f"{codec.value} (detected from the bytes; the manifest does not say)"
    else:
        compression = "unknown (the manifest does not say, and no chunk could be read)"
    chunk_size = f" of {human_size(manifest.chunk_size)}" if manifest.chunk_size else ""
    size = f"{human_size(packed)} packed{so_far}"
    if raw and manifest.complete:
        size += f", {human_size(raw)} tar (ratio {raw / packed:.2f})" if packed else ""
    lines = [
        ("archive", prefix),
        ("compression", compression),
        ("chunks", f"{manifest.total_chunks}{chunk_size}{so_far}"),
    ]
    if manifest.encryption is not None:
        types = ", ".join(sorted(set(manifest.encryption.recipient_types)))
        count = len(manifest.encryption.recipient_types)
        lines.append(("encrypted", f"age, {count} recipient{'s' * (count != 1)} ({types})"))
        if opened is not None:
            sealed = len(opened.secret.blocks)
            lines.append(("opened", f"with the key given; manifest authenticated; {sealed} blocks"))
    if manifest.block_size and manifest.encryption is None:
        count = len(manifest.blocks)
        blocks = f"{human_size(manifest.block_size)} ({count} block{'s' * (count != 1)}{so_far})"
        lines.append(("block size", blocks))
    lines.append(("size", size))
    if manifest.sha256:
        lines.append(("sha256", manifest.sha256))
    if manifest.created:
        lines.append(("created", f"{manifest.created} by {manifest.tool or 'an unknown tool'}"))
    if not manifest.complete:
        lines.append(("complete", "no (interrupted pack)"))
        lines.append(("resume", resume or "the checkpoint does not say how (pack again)"))
        return lines
    lines.append(("complete", "yes"))
    index = opened.secret.index.ref if opened and opened.secret.index else manifest.index
    stored_index = manifest.index_file
    if index is not None:
        digests = ", with content digests" if index.content_sha256 else ""
        lines.append(
            ("index", f"{index.name}: {index.members} members, {human_size(index.size)}{digests}")
        )
    elif stored_index is not None:
        lines.append(("index", f"{stored_index.name}: sealed, {human_size(stored_index.size)}"))
    elif manifest.encryption is None:
        lines.append(("index", "none (stc index PREFIX builds one)"))
    if codec is not None:
        lines.append(
            ("restore", manifest.restore_command or restore_command(codec_for(codec), name))
        )
    if isinstance(parse_prefix(prefix), RemotePrefix):
        lines.append(
            ("check", f"sha256sum -c {name}.sha256   (in a folder the objects were copied to)")
        )
    elif os.path.exists(sha256sum_path(prefix)):
        lines.append(("check", f"sha256sum -c {name}.sha256   (run in the archive's folder)"))
    return lines


def _detected_codec(prefix: str) -> CompressionType | None:
    """A seed manifest names no codec: read it off the first chunk's first bytes."""
    with contextlib.suppress(OSError, StcError):
        return detect_compression(read_head(prefix, HEAD_SIZE))
    return None


def _cmd_unlock(args: argparse.Namespace) -> int:
    prefix = normalize_prefix(args.prefix)
    held_by = sync.unlock(prefix, force=args.force)
    if args.json:
        _print_json({"ok": True, "removed": held_by is not None, "held_by": held_by})
    elif held_by is None:
        _say(args, f"{prefix} has no lock to remove")
    else:
        _say(args, f"removed the lock of {prefix} ({held_by})")
    return 0


def _member_json(member: Listed) -> dict[str, Any]:
    return {
        "name": member.name,
        "kind": member.kind.value,
        "size": member.size,
        "mode": oct(member.mode),
        "mtime": member.mtime,
        "uid": member.uid,
        "gid": member.gid,
        "uname": member.uname,
        "gname": member.gname,
        "linkname": member.linkname,
    }


_COMMANDS = {
    "pack": _cmd_pack,
    "unpack": _cmd_unpack,
    "verify": _cmd_verify,
    "list": _cmd_list,
    "cat": _cmd_cat,
    "diff": _cmd_diff,
    "index": _cmd_index,
    "info": _cmd_info,
    "keygen": _cmd_keygen,
    "unlock": _cmd_unlock,
}
