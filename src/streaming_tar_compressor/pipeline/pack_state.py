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
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..core.chunker import chunk_name
from ..core.manifest import EncryptionInfo, Manifest
from ..encryption import Recipient, ScryptIdentity, ScryptRecipient, open_header
from ..encryption.archive import ArchiveSealer, SealerKeys
from ..encryption.keys import FILE_KEY_SIZE
from ..encryption.stream import NONCE_SIZE
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

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": STATE_FORMAT,
                "file_key": _b64(self.keys.file_key),
                "header": _b64(self.keys.header),
                "nonce": _b64(self.keys.nonce),
                "recipients": list(self.recipients),
                "checkpoint": self.checkpoint.document(),
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
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise ManifestError(f"{source} is not a pack state ({exc})") from None
        return cls(keys, recipients, checkpoint)


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


class SealedTail:
    """What an interrupted encrypted pack wrote past its last checkpoint: its chunks from
    ``first`` on, final or still under their temp name, opened now (the resumed pack's sink
    replaces them) and read as the resumed pack writes the same places (WrittenPast)."""

    def __init__(self, directory: str, name: str, first: int, width: int) -> None:
        self._files: list[io.BufferedReader] = []
        index = first
        try:
            while True:
                final = os.path.join(directory, chunk_name(name, index, width))
                temp = os.path.join(directory, f".{name}.part{index}.tmp")
                handle = _opened(final)
                if handle is None:
                    handle = _opened(temp)
                    if handle is not None:
                        self._files.append(handle)  # the chunk it was writing: the last
                    break
                self._files.append(handle)
                index += 1
        except BaseException:
            self.close()
            raise

    def check(self, data: memoryview) -> None:
        done = 0
        while done < len(data) and self._files:
            old = self._files[0].read(len(data) - done)
            if not old:
                self._files.pop(0).close()
                continue
            if old != data[done : done + len(old)]:
                raise SourceChangedError(
                    "(sources)",
                    "they changed since the interrupted pack sealed them (after its last "
                    "checkpoint): sealing other bytes there would reuse its nonces; pack "
                    "again with --force (a new key)",
                )
            done += len(old)

    def close(self) -> None:
        files, self._files = self._files, []
        for handle in files:
            handle.close()


def _opened(path: str) -> io.BufferedReader | None:
    try:
        return io.BufferedReader(open_regular_file(path))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError(f"cannot read {path} to resume the pack: {exc}") from exc


def state_of(
    sealer: ArchiveSealer, recipients: Sequence[Recipient], checkpoint: Manifest
) -> PackState:
    return PackState(sealer.keys, recipient_names(recipients), checkpoint)


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
