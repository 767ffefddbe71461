"""The manifest (``PREFIX.manifest.json``) and its ``sha256sum`` twin, read strictly.

Readers ignore keys they do not know (additions stay compatible within major version 1) and
reject everything they cannot trust: another major version, missing keys, wrong types, chunk
names with path parts, counts that do not add up.

The seed's manifests (no ``format`` key) carry only ``version``, ``total_chunks`` and
``chunks[{index, size, checksum}]``: the codec is then detected from the bytes, chunk names are
given by the reader that knows the prefix (``with_chunk_names``), and what is missing is simply
not checked. A key that is present is checked all the same.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ManifestError
from ..models import ChunkInfo, CompressionType

MANIFEST_VERSION = "1.0"
FORMAT_NAME = "streaming-tar-compressor"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


INDEX_FORMAT = "stc-index/1"


@dataclass(frozen=True, slots=True)
class IndexRef:
    """The member index beside the chunks (``NAME.index``) and what pins it: the file's size
    and SHA-256, and its directory's place and SHA-256, so that a reader reading one page
    checks the directory it bisects without hashing the whole file."""

    name: str
    size: int
    sha256: str
    members: int
    directory_offset: int
    directory_length: int
    directory_sha256: str
    content_sha256: bool  # whether each regular file's content SHA-256 is in it

    def to_json(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "members": self.members,
            "directory": {
                "offset": self.directory_offset,
                "length": self.directory_length,
                "sha256": self.directory_sha256,
            },
            "content_sha256": self.content_sha256,
        }


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file beside the chunks as stored: what a check without keys compares it with."""

    name: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


ENCRYPTION_FORMAT = "age"
MAX_AGE_HEADER = 1 << 20  # encryption/header.py's bound: no header of stc's or age's is near


@dataclass(frozen=True, slots=True)
class EncryptionInfo:
    """What the manifest of an age-encrypted archive says in public: the recipient types
    (never their keys, which would link archives), the age header's length, the archive's
    secret part (``sealed``: an age file of JSON, to the same recipients under its own file
    key) and ``mac``, the HMAC of every other key of the manifest under a key derived from
    the archive's file key, so that a key holder sees any edit of it."""

    recipient_types: tuple[str, ...]
    header_length: int
    sealed: str  # base64
    mac: str = ""  # hex; "" while the manifest is being made
    # The member index as stored (an age file of its own): its size and ciphertext's SHA-256.
    index: FileRef | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": ENCRYPTION_FORMAT,
            "recipient_types": list(self.recipient_types),
            "header_length": self.header_length,
            "sealed": self.sealed,
            "mac": self.mac,
            **({"index": self.index.to_json()} if self.index is not None else {}),
        }


@dataclass(frozen=True, slots=True)
class Manifest:
    """Everything needed to check, list and restore an archive; ``chunks`` is authoritative."""

    compression: CompressionType | None  # None: not recorded (a seed manifest), detect it
    chunk_size: int | None  # None: not recorded (a seed manifest)
    chunks: tuple[ChunkInfo, ...]
    level: int | None = None
    block_size: int | None = None
    compressed_size: int | None = None
    uncompressed_size: int | None = None
    sha256: str | None = None
    blocks: tuple[tuple[int, int], ...] = ()
    # The SHA-256 of each block's compressed bytes, from its stream offset to the next
    # block's (to the trailer for the last): a ranged read of a block is checked before it
    # is decoded. Empty when not recorded.
    block_sha256: tuple[str, ...] = ()
    trailer_offset: int | None = None
    # None: no index (an older pack, another tool's archive, or an index in a newer format).
    index: IndexRef | None = None
    # None: not encrypted. Encrypted, the block index, the sizes and digests of the
    # compressed stream and the member index are in its sealed part, not here.
    encryption: EncryptionInfo | None = None
    complete: bool = True
    restore_command: str = ""
    created: str = ""
    tool: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    seed: bool = False  # read from a manifest without ``format``: the seed's minimal keys
    # The JSON object as read (None: made here): an encrypted archive's MAC covers it whole,
    # keys this version ignores or normalizes included.
    source: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def total_chunks(self) -> int:
        return len(self.chunks)

    @property
    def index_file(self) -> FileRef | None:
        """The member index's file as stored (sealed, for an encrypted archive), if any."""
        if self.index is not None:
            return FileRef(self.index.name, self.index.size, self.index.sha256)
        return self.encryption.index if self.encryption is not None else None

    def with_chunk_names(self, prefix_name: str, width: int = 4) -> Manifest:
        """Chunks the manifest leaves unnamed (the seed's) named ``PREFIX.part0000``…"""
        named = tuple(
            replace(chunk, name=chunk.name or f"{prefix_name}.part{chunk.index:0{width}d}")
            for chunk in self.chunks
        )
        return replace(self, chunks=named)

    def to_json(self) -> str:
        """Every key this manifest has; one read from a seed manifest stays a seed manifest."""
        return json.dumps(self.document(), indent=1) + "\n"

    def document(self) -> dict[str, Any]:
        """The manifest as the JSON object ``to_json`` writes."""
        document: dict[str, Any] = {
            **self.extra,
            "version": MANIFEST_VERSION,
            "format": FORMAT_NAME,
            "compression": self.compression.value if self.compression is not None else None,
            "level": self.level,
            "block_size": self.block_size,
            "chunk_size": self.chunk_size,
            "total_chunks": self.total_chunks,
            "chunks": [
                {"index": c.index, "name": c.name, "size": c.size, "checksum": c.checksum}
                for c in self.chunks
            ],
            "compressed_size": self.compressed_size,
            "uncompressed_size": self.uncompressed_size,
            "sha256": self.sha256,
            "blocks": [list(pair) for pair in self.blocks],
            **({"block_sha256": list(self.block_sha256)} if self.block_sha256 else {}),
            "trailer_offset": self.trailer_offset,
            **({"index": self.index.to_json()} if self.index is not None else {}),
            **({"encryption": self.encryption.to_json()} if self.encryption else {}),
            "complete": self.complete,
            "restore_command": self.restore_command,
            "created": self.created,
            "tool": self.tool,
        }
        if self.seed:
            del document["format"]
            for key in ("compression", "chunk_size"):
                if document[key] is None:
                    del document[key]
            for chunk in document["chunks"]:
                if not chunk["name"]:
                    del chunk["name"]
        return document

    def sha256sum_text(self) -> str:
        """Lines for ``sha256sum -c PREFIX.sha256``, which checks chunks (and the index) with
        no tool of ours."""
        lines = [f"{c.checksum}  {c.name}\n" for c in self.chunks]
        if self.index_file is not None:
            lines.append(f"{self.index_file.sha256}  {self.index_file.name}\n")
        return "".join(lines)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "manifest") -> Manifest:
        try:
            document = json.loads(text, object_pairs_hook=_unique_keys)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{source} is not valid JSON: {exc}") from exc
        except RecursionError:
            # json raises it for arrays or objects nested deeper than the interpreter's limit.
            raise ManifestError(f"{source} is not a manifest: its JSON nests too deep") from None
        if not isinstance(document, dict):
            raise ManifestError(f"{source} is not a JSON object")
        return _parse(document, source)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when a key is given twice (which one counts is up to the
    reader: two readers could see two manifests)."""
    document = dict(pairs)
    if len(document) != len(pairs):
        raise ValueError("a key is given twice in one object")
    return document


def _parse(doc: dict[str, Any], source: str) -> Manifest:
    version = _require(doc, "version", str, source)
    major = version.split(".", 1)[0]
    if major != MANIFEST_VERSION.split(".", 1)[0]:
        raise ManifestError(
            f"{source} has version {version!r}; this tool reads version 1.x — upgrade it"
        )
    seed = "format" not in doc
    if not seed and doc["format"] != FORMAT_NAME:
        raise ManifestError(f"{source} is not a {FORMAT_NAME} manifest")
    compression: CompressionType | None = None
    if not seed or "compression" in doc:
        try:
            compression = CompressionType(_require(doc, "compression", str, source))
        except ValueError:
            raise ManifestError(
                f"{source} names an unknown compression {doc['compression']!r}"
            ) from None
    chunk_size = (
        _require_int(doc, "chunk_size", source, minimum=1)
        if not seed or "chunk_size" in doc
        else None
    )
    total = _require_int(doc, "total_chunks", source, minimum=0)
    raw_chunks = _require(doc, "chunks", list, source)
    if len(raw_chunks) != total:
        raise ManifestError(
            f"{source} says total_chunks={total} but lists {len(raw_chunks)} chunks"
        )
    chunks = tuple(_parse_chunk(item, i, source, seed) for i, item in enumerate(raw_chunks))
    for chunk in chunks[:-1] if chunk_size is not None else ():
        if chunk.size != chunk_size:
            raise ManifestError(
                f"{source}: chunk {chunk.index} has size {chunk.size}, "
                f"but every chunk but the last must have chunk_size={chunk_size}"
            )
    named = [c.name for c in chunks if c.name]
    if named and len(named) != len(chunks):
        raise ManifestError(f"{source} names some chunks but not all")
    if len(named) != len(set(named)):
        raise ManifestError(f"{source} lists the same chunk name twice")
    compressed_size = _optional_int(doc, "compressed_size", source)
    if compressed_size is not None and compressed_size != sum(c.size for c in chunks):
        raise ManifestError(f"{source}: compressed_size does not equal the sum of chunk sizes")
    sha256 = doc.get("sha256")
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256_HEX.fullmatch(sha256)):
        raise ManifestError(f"{source}: sha256 is not a SHA-256 hex digest")
    blocks = _parse_blocks(doc.get("blocks", []), source)
    known = {
        "version",
        "format",
        "compression",
        "level",
        "block_size",
        "chunk_size",
        "total_chunks",
        "chunks",
        "compressed_size",
        "uncompressed_size",
        "sha256",
        "blocks",
        "block_sha256",
        "trailer_offset",
        "index",
        "encryption",
        "complete",
        "restore_command",
        "created",
        "tool",
    }
    return Manifest(
        compression=compression,
        chunk_size=chunk_size,
        chunks=chunks,
        level=_optional_int(doc, "level", source, minimum=None),
        block_size=_optional_int(doc, "block_size", source, minimum=1),
        compressed_size=compressed_size,
        uncompressed_size=_optional_int(doc, "uncompressed_size", source),
        sha256=sha256,
        blocks=blocks,
        block_sha256=_parse_block_digests(doc.get("block_sha256", []), len(blocks), source),
        trailer_offset=_optional_int(doc, "trailer_offset", source),
        index=parse_index(doc.get("index"), source),
        encryption=_parse_encryption(doc.get("encryption"), source),
        complete=_optional(doc, "complete", bool, source, default=True),
        restore_command=_optional(doc, "restore_command", str, source, default=""),
        created=_optional(doc, "created", str, source, default=""),
        tool=_optional(doc, "tool", str, source, default=""),
        extra={k: v for k, v in doc.items() if k not in known},
        seed=seed,
        source=doc,
    )


def _parse_chunk(item: Any, position: int, source: str, seed: bool) -> ChunkInfo:
    """A chunk entry; in a seed manifest ``name`` may be missing (the reader names it)."""
    where = f"{source} chunk #{position}"
    if not isinstance(item, dict):
        raise ManifestError(f"{where} is not an object")
    index = _require_int(item, "index", where, minimum=0)
    if index != position:
        raise ManifestError(f"{where} has index {index}; chunks must be listed 0, 1, 2, …")
    name = ""
    if "name" in item or not seed:
        name = _require(item, "name", str, where)
        if not is_bare_file_name(name):
            raise ManifestError(f"{where} has name {name!r}, which is not a bare file name")
    checksum = _require(item, "checksum", str, where)
    if not _SHA256_HEX.fullmatch(checksum):
        raise ManifestError(f"{where} has a checksum that is not a SHA-256 hex digest")
    return ChunkInfo(
        index=index,
        name=name,
        size=_require_int(item, "size", where, minimum=0),
        checksum=checksum,
    )


def is_bare_file_name(name: str) -> bool:
    """True for ``backup.part0000``; false for anything with a path part or a NUL."""
    return (
        bool(name) and name not in {".", ".."} and not any(sep in name for sep in ("/", "\\", "\0"))
    )


def _parse_blocks(value: Any, source: str) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list):
        raise ManifestError(f"{source}: blocks is not a list")
    pairs: list[tuple[int, int]] = []
    for pair in value:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(_is_int(x) and x >= 0 for x in pair)
        ):
            raise ManifestError(f"{source}: blocks holds {pair!r}, not a pair of offsets")
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


def _parse_block_digests(value: Any, blocks: int, source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(digest, str) and _SHA256_HEX.fullmatch(digest) for digest in value
    ):
        raise ManifestError(f"{source}: block_sha256 is not a list of SHA-256 hex digests")
    if value and len(value) != blocks:
        raise ManifestError(
            f"{source}: block_sha256 lists {len(value)} digests for {blocks} blocks"
        )
    return tuple(value)


def parse_index(value: Any, source: str) -> IndexRef | None:
    """The index's record; one in another format is left to the tools that know it
    (ManifestError if it is malformed)."""
    if value is None:
        return None
    where = f"{source} index"
    if not isinstance(value, dict):
        raise ManifestError(f"{where} is not an object")
    if value.get("format") != INDEX_FORMAT:
        return None
    name = _require(value, "name", str, where)
    if not is_bare_file_name(name):
        raise ManifestError(f"{where} has name {name!r}, which is not a bare file name")
    directory = _require(value, "directory", dict, where)
    digests = (_require(value, "sha256", str, where), _require(directory, "sha256", str, where))
    if not all(_SHA256_HEX.fullmatch(digest) for digest in digests):
        raise ManifestError(f"{where} has a checksum that is not a SHA-256 hex digest")
    return IndexRef(
        name=name,
        size=_require_int(value, "size", where),
        sha256=digests[0],
        members=_require_int(value, "members", where),
        directory_offset=_require_int(directory, "offset", where),
        directory_length=_require_int(directory, "length", where),
        directory_sha256=digests[1],
        content_sha256=_require(value, "content_sha256", bool, where),
    )


def _parse_encryption(value: Any, source: str) -> EncryptionInfo | None:
    """The public part of an encrypted archive's manifest; an unknown format is refused (its
    chunks are ciphertext: nothing could be read from them without understanding it)."""
    if value is None:
        return None
    where = f"{source} encryption"
    if not isinstance(value, dict):
        raise ManifestError(f"{where} is not an object")
    if value.get("format") != ENCRYPTION_FORMAT:
        raise ManifestError(f"{where} is {value.get('format')!r}, not age: upgrade this tool")
    types = _require(value, "recipient_types", list, where)
    if not types or not all(isinstance(kind, str) for kind in types):
        raise ManifestError(f"{where}: recipient_types is not a list of names")
    mac = _require(value, "mac", str, where)
    if mac and not _SHA256_HEX.fullmatch(mac):  # "": an interrupted pack's, made at its end
        raise ManifestError(f"{where}: mac is not a SHA-256 hex digest")
    header_length = _require_int(value, "header_length", where, minimum=1)
    if header_length > MAX_AGE_HEADER:
        raise ManifestError(f"{where}: header_length {header_length} is beyond any age header")
    return EncryptionInfo(
        recipient_types=tuple(types),
        header_length=header_length,
        sealed=_require(value, "sealed", str, where),
        mac=mac,
        index=_parse_file(value["index"], f"{where} index") if "index" in value else None,
    )


def _parse_file(value: Any, where: str) -> FileRef:
    if not isinstance(value, dict):
        raise ManifestError(f"{where} is not an object")
    name, digest = _require(value, "name", str, where), _require(value, "sha256", str, where)
    if not is_bare_file_name(name):
        raise ManifestError(f"{where} has name {name!r}, which is not a bare file name")
    if not _SHA256_HEX.fullmatch(digest):
        raise ManifestError(f"{where} has a checksum that is not a SHA-256 hex digest")
    return FileRef(name, _require_int(value, "size", where), digest)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(doc: dict[str, Any], key: str, kind: type, source: str) -> Any:
    if key not in doc:
        raise ManifestError(f"{source} lacks the key {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ManifestError(f"{source}: {key!r} must be a {kind.__name__}, not {value!r}")
    return value


def _require_int(doc: dict[str, Any], key: str, source: str, minimum: int | None = 0) -> int:
    if key not in doc:
        raise ManifestError(f"{source} lacks the key {key!r}")
    return _check_int(doc[key], key, source, minimum)


def _optional_int(
    doc: dict[str, Any], key: str, source: str, minimum: int | None = 0
) -> int | None:
    value = doc.get(key)
    return None if value is None else _check_int(value, key, source, minimum)


def _check_int(value: Any, key: str, source: str, minimum: int | None) -> int:
    if not _is_int(value):
        raise ManifestError(f"{source}: {key!r} must be an integer, not {value!r}")
    if minimum is not None and value < minimum:
        raise ManifestError(f"{source}: {key!r} must be at least {minimum}, not {value}")
    return int(value)


def _optional(doc: dict[str, Any], key: str, kind: type, source: str, default: Any) -> Any:
    if doc.get(key) is None:
        return default
    return _require(doc, key, kind, source)
