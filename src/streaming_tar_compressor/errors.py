"""The one exception hierarchy of the package.

Every error a user can act on has its own class and its own CLI exit code::

    StcError                      (1)  anything of ours
    ├── UsageError                (2)  a bad option or argument value
    │   └── MemberNotFoundError   (2)  a member named to list or extract is not in the archive
    ├── SourceError               (3)  a source to pack is missing or unreadable
    │   └── SourceChangedError    (11) a source changed while it was being packed
    ├── ManifestError             (4)  the manifest is missing, not JSON, or not ours
    ├── MissingChunkError         (5)  a listed chunk never came
    ├── ChecksumMismatchError     (6)  a chunk or the whole stream has the wrong SHA-256 or size
    ├── ArchiveDamagedError       (6)  verify found one or more damaged chunks (lists them all)
    ├── CorruptStreamError        (7)  the compressed or tar stream does not decode
    │   └── TruncatedStreamError  (7)  the stream ends before its end
    ├── CompressionMismatchError  (9)  the stated codec contradicts the bytes
    ├── UnsafeMemberError         (8)  an archive member breaks a safety rule
    ├── LimitExceededError        (12) extraction would pass max_output_bytes or max_members
    ├── OutputError               (10) the output cannot be written
    │   └── ArchiveBusyError      (10) another pack is writing to the same prefix
    ├── StoreError                (13) an object store refused a request or cannot be reached
    └── DecryptionError           (14) an encrypted archive cannot be decrypted (no key fits,
                                       a wrong passphrase, an altered header or payload)

This module imports nothing of ours so that every other module can import it.
"""

from __future__ import annotations


class StcError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = 1


class UsageError(StcError):
    """An option or argument value that cannot work (size, level, codec name)."""

    exit_code = 2


class MemberNotFoundError(UsageError):
    """Names or patterns that selected no member (GNU tar: "Not found in archive", exit 2)."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        names = ", ".join(repr(name) for name in missing)
        super().__init__(f"not found in the archive: {names}")


class SourceError(StcError):
    """A source to pack is missing or unreadable; raised before anything is written."""

    exit_code = 3

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"cannot pack {path!r}: {reason}")


class SourceChangedError(SourceError):
    """A file changed size while it was read, so its tar member would be wrong."""

    exit_code = 11


class ManifestError(StcError):
    """The manifest cannot be read or does not describe an archive we understand."""

    exit_code = 4


class MissingChunkError(StcError):
    """A listed chunk never came (ChecksumMismatchError: it came, but wrong)."""

    exit_code = 5

    def __init__(self, index: int, location: str, advice: str = "copy it there and retry") -> None:
        self.index, self.location = index, location
        super().__init__(f"chunk {index} is missing from {location}; {advice}")


class ChecksumMismatchError(StcError):
    """A chunk (or the whole stream) does not match the size or SHA-256 the manifest records."""

    exit_code = 6

    def __init__(self, name: str, expected: str, actual: str) -> None:
        self.name, self.expected, self.actual = name, expected, actual
        super().__init__(
            f"{name} is damaged: expected {expected}, got {actual}; fetch a good copy and retry"
        )


class ArchiveDamagedError(StcError):
    """Verification found problems; ``problems`` names every one, not just the first."""

    exit_code = 6

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''}: " + "; ".join(problems))


class CorruptStreamError(StcError):
    """The compressed stream or the tar stream inside it does not decode."""

    exit_code = 7


class TruncatedStreamError(CorruptStreamError):
    """The stream stops before its natural end (missing tail, interrupted transfer)."""


class CompressionMismatchError(StcError):
    """The codec the caller stated is not the one the first bytes show."""

    exit_code = 9

    def __init__(self, stated: str, detected: str) -> None:
        self.stated, self.detected = stated, detected
        super().__init__(f"the archive is {detected}, not {stated} as stated")


class UnsafeMemberError(StcError):
    """An archive member would break a safety rule; names the member and the rule."""

    exit_code = 8

    def __init__(self, member: str, rule: str) -> None:
        self.member, self.rule = member, rule
        shown = member if len(member) <= 300 else f"{member[:150]}…{member[-100:]}"
        super().__init__(f"refusing member {shown!r}: {rule}")


class LimitExceededError(StcError):
    """Extraction would pass a cap the caller set; stopped before the member that crosses it."""

    exit_code = 12

    def __init__(self, member: str, limit: str, maximum: int) -> None:
        self.member, self.limit, self.maximum = member, limit, maximum
        super().__init__(f"stopped at member {member!r}: the archive exceeds {limit}={maximum}")


class OutputError(StcError):
    """The output (chunks, manifest or extracted files) cannot be written."""

    exit_code = 10


class ArchiveBusyError(OutputError):
    """Another pack holds the prefix's lock: two writers would interleave their chunks."""


class StoreError(StcError):
    """An object store refused a request (no such bucket, access denied, bad credentials) or
    could not be reached after the retries; the message names the object and the store's
    answer, never a credential."""

    exit_code = 13


class TransientStoreError(StoreError):
    """The store's answer may change if asked again later: 503 SlowDown, 429, another 5xx, a
    dropped connection or a timeout. ``throttled``: the store asked to slow down."""

    def __init__(self, message: str, *, throttled: bool = False) -> None:
        super().__init__(message)
        self.throttled = throttled


class DecryptionError(StcError):
    """An age-encrypted archive cannot be decrypted. ``kind`` says at which step, as the age
    test vectors do: "header" (malformed), "no match" (no identity or passphrase given opens
    it), "hmac" (the header was altered), "payload" (a chunk does not authenticate, or the
    payload is cut short or runs on). No plaintext that did not authenticate is ever given
    out."""

    exit_code = 14

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(f"cannot decrypt: {message}")
