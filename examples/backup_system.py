"""A small named-backup tool on top of the library: create, list and restore backups.

Each backup lives in its own folder ``STORE/NAME/`` as ``backup.part0000``… in 100 MiB chunks
plus ``backup.manifest.json``; the listing reads nothing but the manifests.

Run:  python examples/backup_system.py create home-2026-11-27 ~/notes ~/photos --store /backups
      python examples/backup_system.py list --store /backups
      python examples/backup_system.py restore home-2026-11-27 --store /backups -C /tmp/restored
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from streaming_tar_compressor import (
    CompressionType,
    Manifest,
    StcError,
    UsageError,
    compress_with_chunks,
    decompress_from_chunks,
    read_manifest,
)

CHUNK_SIZE = 100 * 2**20


class BackupSystem:
    """Named backups under one store folder; a name is a folder, so it must be a plain name."""

    def __init__(self, store: str | Path) -> None:
        self.store = Path(store)

    def prefix(self, name: str) -> Path:
        if not name or name.startswith(".") or "/" in name:
            raise UsageError(f"backup name {name!r} must be a plain folder name")
        return self.store / name / "backup"

    async def create(self, name: str, sources: Sequence[str]) -> Manifest:
        """Packs the sources; an existing backup of that name is an error, never replaced."""
        prefix = self.prefix(name)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        await compress_with_chunks(sources, prefix, CompressionType.ZSTD, chunk_size=CHUNK_SIZE)
        return read_manifest(prefix)

    async def restore(self, name: str, destination: str) -> int:
        """Restores into ``destination``, checking every chunk; returns the member count."""
        result = await decompress_from_chunks(self.prefix(name), destination)
        return result.members

    def list(self) -> list[tuple[str, Manifest]]:
        """Every backup in the store with its manifest, oldest first."""
        found = [
            (path.parent.name, read_manifest(self.prefix(path.parent.name)))
            for path in self.store.glob("*/backup.manifest.json")
        ]
        return sorted(found, key=lambda item: item[1].created)


def mib(size: int | None) -> str:
    return "?" if size is None else f"{size / 2**20:.1f} MiB"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="back up sources under a new name")
    create.add_argument("name")
    create.add_argument("sources", nargs="+", metavar="SRC")
    restore = commands.add_parser("restore", help="restore a backup into a folder")
    restore.add_argument("name")
    restore.add_argument("-C", "--directory", required=True, metavar="DEST")
    commands.add_parser("list", help="show every backup with its sizes and date")
    for command in commands.choices.values():
        command.add_argument("--store", required=True, metavar="DIR")
    args = parser.parse_args(argv)

    backups = BackupSystem(args.store)
    try:
        if args.command == "create":
            manifest = await backups.create(args.name, args.sources)
            size, packed = mib(manifest.uncompressed_size), mib(manifest.compressed_size)
            print(f"created {args.name}: {size} into {packed}, {manifest.total_chunks} chunk(s)")
        elif args.command == "restore":
            members = await backups.restore(args.name, args.directory)
            print(f"restored {args.name}: {members} member(s) into {args.directory}")
        else:
            for name, manifest in backups.list():
                size, packed = mib(manifest.uncompressed_size), mib(manifest.compressed_size)
                print(f"{name:24} {manifest.created:22} {size:>12} -> {packed:>12}")
    except StcError as exc:  # one line, not a traceback; the exit code says which kind
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
