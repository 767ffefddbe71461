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
import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..core.manifest import EncryptionInfo, Manifest
from ..encryption import Recipient, ScryptIdentity, ScryptRecipient, open_header
from ..encryption.archive import ArchiveSealer, SealerKeys
from ..encryption.keys import FILE_KEY_SIZE
from ..encryption.stream import NONCE_SIZE
from ..errors import DecryptionError, ManifestError, OutputError, UsageError
from ..storage.local import atomic_write

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
    """Synced into place, readable by its owner only (it holds the archive's file key)."""
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
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(state_path(prefix))
    except OSError as exc:
        raise OutputError(f"cannot remove {state_path(prefix)}: {exc}") from exc


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
    return tuple(sorted(str(r) for r in recipients if not isinstance(r, ScryptRecipient)))


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
