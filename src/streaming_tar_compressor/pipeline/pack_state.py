"""The private state of an encrypted pack in progress: ``PREFIX.resume``, mode 0600, beside
the chunks while the pack is incomplete, removed when it completes.

A resumed encrypted pack must seal on with the same file key and payload nonce (a new key
would not join the chunks already stored; a new nonce for the same key is never allowed),
and its checkpoint holds the block index and source paths, which the public manifest of an
encrypted archive may not show. So each checkpoint is written twice: whole, with the keys,
into this file; and without them, as the public manifest says ``complete: false``, with the
chunks so far and the name of this file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from ..core.chunker import chunk_name
from ..core.manifest import EncryptionInfo, Manifest
from ..encryption import Recipient, ScryptIdentity, ScryptRecipient, open_header
from ..encryption.archive import ArchiveSealer, SealerKeys
from ..encryption.keys import FILE_KEY_SIZE
from ..encryption.stream import CHUNK, NONCE_SIZE, SEALED_CHUNK, age_chunk_start
from ..errors import DecryptionError, ManifestError, OutputError, SourceChangedError, UsageError
from ..storage.local import atomic_write, open_regular_file

STATE_SUFFIX = ".resume"
STATE_FORMAT = "stc-pack-state/1"


@dataclass(frozen=True, slots=True)
class PackState:
    """An encrypted pack's last checkpoint, as an unencrypted pack's would be (chunks, block
    index, resume point, sources), with the keys of its age stream and its recipients
    (``age1…``; none under a passphrase, which is never stored)."""

    keys: SealerKeys
    recipients: tuple[str, ...]
    checkpoint: Manifest
    written: AgeChunks = field(default_factory=dict)  # past the checkpoint, by earlier runs

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": STATE_FORMAT,
                "file_key": _b64(self.keys.file_key),
                "header": _b64(self.keys.header),
                "nonce": _b64(self.keys.nonce),
                "recipients": list(self.recipients),
                "checkpoint": self.checkpoint.document(),
                "written": [[n, length, digest] for n, (length, digest) in self.written.items()],
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes, source: str) -> PackState:
        try:
            doc = json.loads(data)
            if doc["format"] != STATE_FORMAT:
                raise ValueError(f"format {doc['format']!r}")
            keys = SealerKeys(_unb64(doc["file_key"]), _unb64(doc["header"]), _unb64(doc["nonce"]))
            if len(keys.file_key) != FILE_KEY_SIZE or len(keys.nonce) != NONCE_SIZE:
                raise ValueError("a key of the wrong size")
            recipients = tuple(str(recipient) for recipient in doc["recipients"])
            checkpoint = Manifest.from_json(json.dumps(doc["checkpoint"]), source)
            written = {
                int(n): (int(length), str(digest)) for n, length, digest in doc.get("written", [])
            }
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise ManifestError(f"{source} is not a pack state ({exc})") from None
        return cls(keys, recipients, checkpoint, written)


def state_path(prefix: str) -> str:
    return prefix + STATE_SUFFIX


def write_state(prefix: str, state: PackState) -> None:
    """Synced into place, readable by its owner only (it holds the archive's file key); a
    file of that name that is not a pack state is refused, not replaced."""
    if os.path.lexists(state_path(prefix)) and not is_state(prefix):
        raise OutputError(
            f"{state_path(prefix)} exists and is not stc's: an encrypted pack keeps its keys "
            "there while it runs; move it, or choose another prefix"
        )
    atomic_write(state_path(prefix), state.to_json(), mode=0o600)


def read_state(prefix: str) -> PackState:
    path = state_path(prefix)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ManifestError(
            f"{path} is missing: the interrupted encrypted pack cannot go on without its "
            "keys; pack again with --force"
        ) from None
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from exc
    return PackState.from_json(data, path)


def remove_state(prefix: str) -> None:
    """The state of a pack that completed or was replaced; a file of that name that is not a
    pack state is someone else's, and stays."""
    if is_state(prefix):
        try:
            os.unlink(state_path(prefix))
        except OSError as exc:
            raise OutputError(f"cannot remove {state_path(prefix)}: {exc}") from exc


def is_state(prefix: str) -> bool:
    """Whether ``PREFIX.resume`` is there and is a pack state (by its first bytes)."""
    try:
        with open(state_path(prefix), "rb") as handle:
            return handle.read(len(_STATE_START)) == _STATE_START
    except OSError:
        return False


_STATE_START = json.dumps({"format": STATE_FORMAT}).encode()[:-1]  # '{"format": "stc-…"'


AgeChunks = dict[int, tuple[int, str]]
"""Age chunks written by runs of a pack: per chunk number, how many of its sealed bytes (from
its start) and their SHA-256."""


class WrittenPastCheck:
    """The age chunks earlier runs of an encrypted pack wrote past its checkpoint (WrittenPast):
    a resumed pack seals each of them again and, before writing it, compares its first bytes
    with what was written, so that no counter is ever used for other plaintext."""

    def __init__(self, written: AgeChunks, header_length: int) -> None:
        self.written = written
        self._payload = header_length + NONCE_SIZE

    def check(self, offset: int, data: memoryview) -> None:
        """``data`` is whole age chunks (or the header and nonce): what the sealer hands on."""
        assert offset <= self._payload or (offset - self._payload) % SEALED_CHUNK == 0
        end = offset + len(data)
        at = max(offset, self._payload)
        while at < end:
            number = (at - self._payload) // SEALED_CHUNK
            chunk_end = min(self._payload + (number + 1) * SEALED_CHUNK, end)
            if number in self.written:
                length, digest = self.written[number]
                sealed = data[at - offset : chunk_end - offset]
                if hashlib.sha256(sealed[:length]).hexdigest() != digest:
                    raise SourceChangedError(
                        "(sources)",
                        "they changed since the interrupted pack sealed them (after its last "
                        "checkpoint): sealing other bytes there would reuse its nonces; pack "
                        "again with --force (a new key)",
                    )
            at = chunk_end


def written_age_chunks(
    directory: str, name: str, width: int, chunk_size: int, header_length: int, start: int
) -> AgeChunks:
    """The age chunks from the one that holds archive offset ``start`` to the end of what is
    on disk: the chunk files from there on (the checkpoint's, then the ones finished after
    it, then the one in progress under its temp name), read back."""
    payload = header_length + NONCE_SIZE
    number = max(0, start - payload) // SEALED_CHUNK
    offset = age_chunk_start(header_length, number * CHUNK)
    found: AgeChunks = {}
    digest, length = hashlib.sha256(), 0
    skip = offset % chunk_size  # into the first file: every chunk but the last is whole
    for handle in _chunk_files(directory, name, width, offset // chunk_size):
        with handle:
            handle.seek(skip)
            skip = 0
            while piece := handle.read(SEALED_CHUNK - length):
                digest.update(piece)
                length += len(piece)
                if length == SEALED_CHUNK:
                    found[number] = (length, digest.hexdigest())
                    number, digest, length = number + 1, hashlib.sha256(), 0
    if length:
        found[number] = (length, digest.hexdigest())
    return found


def _chunk_files(directory: str, name: str, width: int, first: int) -> Iterator[io.FileIO]:
    """Chunk ``first`` and the ones after it, final or (the last) under its temp name."""
    index = first
    while True:
        handle = _opened(os.path.join(directory, chunk_name(name, index, width)))
        if handle is None:
            temp = _opened(os.path.join(directory, f".{name}.part{index}.tmp"))
            if temp is not None:
                yield temp
            return
        yield handle
        index += 1


def merged(recorded: AgeChunks, found: AgeChunks) -> AgeChunks:
    """What earlier runs recorded and what is on disk now, the longer of each (a chunk file
    an earlier resume removed is gone from disk, not from the record)."""
    result = dict(recorded)
    for number, (length, digest) in found.items():
        before = result.get(number)
        if before is not None and before[0] == length and before[1] != digest:
            raise ManifestError(
                f"age chunk {number} on disk is not what an earlier run wrote there: the "
                "chunks were altered; pack again with --force"
            )
        if before is None or length >= before[0]:
            result[number] = (length, digest)
    return result


def _opened(path: str) -> io.FileIO | None:
    try:
        return open_regular_file(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError(f"cannot read {path} to resume the pack: {exc}") from exc


def state_of(
    sealer: ArchiveSealer,
    recipients: Sequence[Recipient],
    checkpoint: Manifest,
    written: AgeChunks,
) -> PackState:
    """The state at ``checkpoint``, with the age chunks earlier runs wrote past it."""
    done = sum(chunk.size for chunk in checkpoint.chunks)
    header = sealer.header_length
    past = {n: w for n, w in written.items() if age_chunk_start(header, n * CHUNK) + w[0] > done}
    return PackState(sealer.keys, recipient_names(recipients), checkpoint, past)


def public_checkpoint(state: PackState, sealer: ArchiveSealer, prefix_name: str) -> Manifest:
    """The checkpoint as the manifest shows it: the chunks so far, no block index, no
    resume point, no sources; where the rest is. No MAC: it is made when the pack ends."""
    info = EncryptionInfo(
        recipient_types=sealer.recipient_types, header_length=sealer.header_length, sealed=""
    )
    return replace(
        state.checkpoint,
        blocks=(),
        block_sha256=(),
        encryption=info,
        extra={"resume": {"state": prefix_name + STATE_SUFFIX}},
    )


def recipient_names(recipients: Sequence[Recipient]) -> tuple[str, ...]:
    return tuple(sorted({str(r) for r in recipients if not isinstance(r, ScryptRecipient)}))


def check_same_recipients(state: PackState, recipients: Sequence[Recipient]) -> None:
    """A resumed pack seals to the interrupted one's recipients, or under its passphrase."""
    passphrases = [r for r in recipients if isinstance(r, ScryptRecipient)]
    if not recipients:
        raise UsageError(
            "the interrupted pack is encrypted: resume it with the same -r/-R or --passphrase"
        )
    if passphrases and not state.recipients:
        try:
            open_header(state.keys.header, [ScryptIdentity(passphrases[0].passphrase)])
        except DecryptionError:
            raise UsageError(
                "the passphrase is not the interrupted pack's: resume it with the same one"
            ) from None
        return
    if recipient_names(recipients) != state.recipients or passphrases:
        raise UsageError(
            "the interrupted pack was encrypted to other recipients: resume it with the same "
            "-r/-R or --passphrase"
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)
