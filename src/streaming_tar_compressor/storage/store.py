"""The small object-store interface stc needs, on obstore (S3, GCS, Azure, HTTP, memory).

Everything remote goes through ``Store``, so a test can put a fault-injecting wrapper under
the pipelines. Keys are file names in the archive's folder (``backup.part0000``). obstore's
calls release the GIL and retry on their own (5xx, 429/SlowDown, dropped connections,
timeouts: 10 tries within 3 minutes, exponential back-off with jitter), except a ``put`` asked
to try once: its caller retries, and paces its uploads by what the store answered. What still
fails becomes one of our errors, never a credential in a message.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import MemoryStore, from_url

from ..errors import ArchiveBusyError, StoreError, TransientStoreError, UsageError
from .location import RemotePrefix

if TYPE_CHECKING:
    from typing import TypeAlias

    from obstore import Attributes, UpdateVersion
    from obstore.store import ClientConfig

    # Overwrite, create only if absent, or replace only the version with this ETag.
    PutMode: TypeAlias = Literal["overwrite", "create"] | UpdateVersion

T = TypeVar("T")
Data = bytes | bytearray | memoryview
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


SHA256_ATTRIBUTE = "stc-sha256"  # user metadata (x-amz-meta-stc-sha256 on S3)
# Azure takes only C# identifiers as metadata names.
SHA256_ATTRIBUTE_AZURE = "stc_sha256"
AZURE_SCHEMES = ("az", "abfs", "abfss")
PART_SIZE = 8 * 2**20  # multipart parts of streamed chunks (S3's minimum is 5 MiB)
PARTS_IN_FLIGHT = 2
# The HTTP status in obstore's messages ("… non-2xx status code: 503 Service Unavailable …").
STATUS = re.compile(r"status code: (\d{3})")
THROTTLE_STATUSES = (429, 503)  # "slow down" (S3 answers 503 SlowDown; GCS and Azure 429/503)
# Answers that may change if asked again: a timeout, "slow down", a server error (but 501, "not
# implemented", stays so), and S3's 400s for a body damaged on the way.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
DAMAGED_ON_THE_WAY = ("BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest")
# A store out of room: 507 Insufficient Storage (MinIO answers XMinioStorageFull with it), or
# an S3-compatible store's quota (Ceph: 403 QuotaExceeded). Said plainly; a chunk's PUT, tried
# once, is not asked again (room comes back when someone frees it, not within minutes).
FULL_STATUS = 507
FULL_CODES = ("StorageFull", "QuotaExceeded")  # endings: MinIO's are XMinio…QuotaExceeded too
ERROR_CODE = re.compile(r"<Code>\s*(\w+)\s*</Code>")
FULL = "the store is full or over its quota"
# A request or its answer lost on the way, in obstore's (reqwest's, hyper's) words.
LOST_ON_THE_WAY = re.compile(
    r"error sending request|connection|timed out|timeout|broken pipe|reset by peer"
    r"|error decoding response body|unexpected eof|incomplete",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None
    modified: float  # seconds since the epoch
    sha256: str | None = None  # the SHA-256 the object was stored with, when we stored it


class Store(Protocol):
    """What stc asks of a store; ``url`` names it in messages; ``requests`` counts them."""

    url: str
    requests: int

    def put(
        self,
        key: str,
        data: Data,
        *,
        mode: PutMode = "overwrite",
        sha256: str | None = None,
        retry: bool = True,
    ) -> str | None:
        """Store ``data`` whole (one request, atomic); returns the new ETag. ``create`` raises
        ArchiveBusyError when the key exists, an ETag mode when it changed. ``sha256`` is kept
        with the object, so ``head`` can check it without a download. ``retry=False``: one
        try; an answer that may change later raises TransientStoreError at once."""

    def put_stream(
        self, key: str, pieces: Iterable[bytes], *, sha256: str | None = None
    ) -> str | None:
        """Store the pieces as one object while they come (multipart: PART_SIZE parts, two in
        flight), for chunks too big to hold in memory; returns the ETag. ``sha256``, when
        known before the upload (a spooled file's), is kept with the object as ``put``'s."""

    def abort_uploads(self, prefix: str, ours: Callable[[str], bool]) -> int:
        """Abort the multipart uploads in progress under keys that start with ``prefix`` and
        that ``ours`` accepts (a dead pack's streamed chunks); how many. S3 only, through
        boto3 when it is installed; 0 elsewhere (a bucket lifecycle rule cleans up then)."""

    def head(self, key: str) -> ObjectInfo | None:
        """The object's size, ETag and stored SHA-256; None when it does not exist."""

    def get(self, key: str) -> bytes | None:
        """The whole object; None when it does not exist."""

    def get_range(self, key: str, start: int, end: int) -> memoryview:
        """Bytes ``start`` to ``end`` (exclusive); FileNotFoundError when the object is gone."""

    def list(self) -> list[ObjectInfo]:
        """Every object directly in the folder (may take several requests)."""

    def delete(self, key: str) -> None:
        """Remove the object; one that is already gone is fine."""


class ObstoreStore:
    """A folder of an object store, through obstore."""

    def __init__(self, prefix: RemotePrefix) -> None:
        self.url = prefix.folder
        self.requests = 0
        self._prefix = prefix
        self._once: Any = None  # the same store without obstore's retries, made when needed
        # GCS replaces an object only if its generation matches, and obstore asks for it with
        # the ETag: the generation ("version") of every ETag seen, to send along.
        self._versions: dict[tuple[str, str], str] = {}  # (key, ETag) → generation
        self._once_made = threading.Lock()
        self._sha256_name = (
            SHA256_ATTRIBUTE_AZURE if prefix.scheme in AZURE_SCHEMES else SHA256_ATTRIBUTE
        )
        self._base = ""
        if prefix.scheme == "memory":
            # One store per process, so what a pack writes to memory:// an unpack can read.
            self._store: Any = _memory_store()
            self._once = self._store  # nothing to retry in memory
            self._base = prefix.folder[len("memory://") :].strip("/")
        else:
            self._store = _open(prefix)

    def put(
        self,
        key: str,
        data: Data,
        *,
        mode: PutMode = "overwrite",
        sha256: str | None = None,
        retry: bool = True,
    ) -> str | None:
        attributes: Attributes | None = {self._sha256_name: sha256} if sha256 else None
        mode = with_version(mode, self._versions, key)
        if not retry:
            with self._once_made:  # several uploaders may ask at once: one client for all
                if self._once is None:
                    self._once = _open(self._prefix, retries=False)
        store = self._store if retry else self._once

        def call() -> str | None:
            result = obstore.put(
                store,
                self._key(key),
                data,
                mode=mode,
                attributes=attributes,
                use_multipart=False,
            )
            return self._seen(key, result)

        verb = "write" if mode in ("overwrite", "create") else "replace"
        try:
            return self._call(key, verb, call)
        except ArchiveBusyError:
            # A retried conditional PUT whose first try was stored (its answer lost on the
            # way) fails its own precondition: the object holding exactly our bytes is success.
            if mode == "overwrite":
                raise
            current, etag = self._get_with_etag(key)
            if current != bytes(data):
                raise
            return etag

    def put_stream(
        self, key: str, pieces: Iterable[bytes], *, sha256: str | None = None
    ) -> str | None:
        attributes: Attributes | None = {self._sha256_name: sha256} if sha256 else None

        def call() -> str | None:
            result = obstore.put(
                self._store,
                self._key(key),
                pieces,
                attributes=attributes,
                use_multipart=True,
                chunk_size=PART_SIZE,
                max_concurrency=PARTS_IN_FLIGHT,
            )
            return self._seen(key, result)

        return self._call(key, "write", call)

    def abort_uploads(self, prefix: str, ours: Callable[[str], bool]) -> int:
        if self._prefix.scheme not in ("s3", "s3a"):
            return 0  # Azure drops uncommitted blocks within a week; GCS: a lifecycle rule
        try:
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError:
            return 0
        # The bucket and the folder's key as obstore has them (it decodes %-escapes).
        bucket = self._store.config["bucket"]
        base = f"{self._store.prefix}/" if self._store.prefix else ""
        aborted = 0
        try:
            client = _boto3_client(self._store.config.get("endpoint"))
            for page in client.get_paginator("list_multipart_uploads").paginate(
                Bucket=bucket, Prefix=base + prefix
            ):
                self.requests += 1
                for upload in page.get("Uploads", []):
                    if upload["Key"].startswith(base) and ours(upload["Key"][len(base) :]):
                        self.requests += 1
                        client.abort_multipart_upload(
                            Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
        except (BotoCoreError, ClientError, ValueError):
            pass  # a clean-up only: the pack goes on, the lifecycle rule remains the net
        return aborted

    def head(self, key: str) -> ObjectInfo | None:
        # A GET that asks for the head only: the same one request as HEAD, with user metadata.
        try:
            result = self._call(
                key,
                "read",
                lambda: obstore.get(self._store, self._key(key), options={"head": True}),
            )
        except FileNotFoundError:
            return None
        self._seen(key, result.meta)
        info = _info(key, result.meta)
        stored = result.attributes.get(self._sha256_name)
        return replace(info, sha256=stored) if isinstance(stored, str) else info

    def get(self, key: str) -> bytes | None:
        return self._get_with_etag(key)[0]

    def _get_with_etag(self, key: str) -> tuple[bytes | None, str | None]:
        """The object and the ETag of that very version (one GET)."""
        try:
            result = self._call(key, "read", lambda: obstore.get(self._store, self._key(key)))
        except FileNotFoundError:
            return None, None
        return bytes(result.bytes()), self._seen(key, result.meta)

    def get_range(self, key: str, start: int, end: int) -> memoryview:
        if end <= start:
            return memoryview(b"")
        return self._call(  # obstore's buffer as is: no copy of what may be 8 MiB
            key,
            "read",
            lambda: memoryview(
                obstore.get_range(self._store, self._key(key), start=start, end=end)
            ),
        )

    def list(self) -> list[ObjectInfo]:
        def call() -> list[ObjectInfo]:
            found: list[ObjectInfo] = []
            listing = obstore.list_with_delimiter(self._store, self._base or None)
            for meta in listing["objects"]:
                found.append(_info(meta["path"].rsplit("/", 1)[-1], meta))
            return found

        try:
            return self._call("", "list", call)
        except FileNotFoundError:
            return []

    def delete(self, key: str) -> None:
        try:
            self._call(key, "delete", lambda: obstore.delete(self._store, self._key(key)))
        except FileNotFoundError:
            return

    def _seen(self, key: str, answer: Any) -> str | None:
        """The ETag of a put result or object meta, its generation remembered for GCS."""
        etag, version = answer.get("e_tag"), answer.get("version")
        if not isinstance(etag, str):
            return None
        if isinstance(version, str) and version:
            self._versions[key, etag] = version
        return etag

    def _key(self, key: str) -> str:
        return f"{self._base}/{key}" if self._base else key

    def _call(self, key: str, verb: str, call: Callable[[], T]) -> T:
        """obstore's errors as ours: FileNotFoundError passes (the caller knows what is
        missing); the rest name the object and the store's answer."""
        where = f"{self.url}/{key}" if key else self.url
        self.requests += 1  # from several threads: a count for reports, not an exact tally
        try:
            return call()
        except (FileNotFoundError, NotFoundError) as exc:
            if verb == "write":  # a PUT answered 404: the bucket (or container) is not there
                raise StoreError(f"cannot write {where}: no such bucket") from exc
            if verb == "replace":  # the version we meant to replace was deleted meanwhile
                raise ArchiveBusyError(
                    f"{where} was removed by someone else meanwhile (stc unlock, or a pack "
                    "with --force?)"
                ) from exc
            raise FileNotFoundError(where) from exc
        except (AlreadyExistsError, PreconditionError) as exc:
            raise ArchiveBusyError(
                f"{where} was written by someone else meanwhile (another pack to the same "
                "prefix?); nothing of theirs was replaced"
            ) from exc
        except (PermissionDeniedError, UnauthenticatedError) as exc:
            if is_full(str(exc)):  # Ceph's QuotaExceeded comes as a 403
                raise StoreError(f"cannot {verb} {where}: {FULL} ({_first_line(exc)})") from exc
            raise StoreError(f"cannot {verb} {where}: access denied ({_first_line(exc)})") from exc
        except Exception as exc:  # obstore raises plain ones too (GenericError, OSError…)
            if verb == "list" and "404 Not Found" in str(exc):
                raise StoreError(f"cannot list {where}: no such bucket") from exc
            # The first line says what happened; the rest is a debug dump of the client's
            # settings (its "retry_timeout" would match any wording about timeouts).
            answer = _first_line(exc)
            message = f"cannot {verb} {where}: {answer}"
            if is_full(str(exc)):
                raise StoreError(f"cannot {verb} {where}: {FULL} ({answer})") from exc
            if _may_change(answer):
                found = STATUS.search(answer)
                throttled = found is not None and int(found.group(1)) in THROTTLE_STATUSES
                raise TransientStoreError(message, throttled=throttled) from exc
            raise StoreError(message) from exc


def with_version(mode: PutMode, versions: dict[tuple[str, str], str], key: str) -> PutMode:
    """An If-Match put mode with the generation of ``key``'s ETag added, when one was seen
    (GCS needs it; S3 and Azure match on the ETag alone)."""
    if isinstance(mode, dict) and not mode.get("version"):
        version = versions.get((key, mode.get("e_tag") or ""))
        if version:
            return {**mode, "version": version}
    return mode


def open_store(prefix: RemotePrefix) -> Store:
    return ObstoreStore(prefix)


def endpoint_url() -> str | None:
    """The S3 endpoint users set for S3-compatible stores (MinIO, R2, moto…)."""
    for variable in ENDPOINT_VARIABLES:
        value = os.environ.get(variable)
        if value:
            return value
    return None


def _open(prefix: RemotePrefix, *, retries: bool = True) -> Any:
    """The obstore store of the prefix's folder; ``retries=False``: each request tried once."""
    options: dict[str, Any] = {} if retries else {"retry_config": {"max_retries": 0}}
    client: ClientConfig = {}
    if prefix.scheme in ("s3", "s3a"):
        provider = _profile_credentials()
        if provider is not None:
            options["credential_provider"] = provider
        endpoint = endpoint_url()
        if endpoint:
            options["endpoint"] = endpoint
            # A local S3-compatible server speaks plain http; obstore refuses it unless told.
            client["allow_http"] = endpoint.startswith("http://")
        options["checksum_algorithm"] = "sha256"  # S3 rejects a body corrupted on the way
    elif prefix.scheme in AZURE_SCHEMES:
        # obstore reads the endpoint by itself, but refuses an emulator's plain http unless told.
        endpoint = os.environ.get("AZURE_STORAGE_ENDPOINT") or os.environ.get("AZURE_ENDPOINT")
        if endpoint:
            client["allow_http"] = endpoint.startswith("http://")
    elif prefix.scheme == "http":
        client["allow_http"] = True
    try:
        return from_url(prefix.folder + "/", client_options=client or None, **options)
    except Exception as exc:
        raise UsageError(f"cannot open {prefix.folder}: {_first_line(exc)}") from exc


def _boto3_client(endpoint: str | None) -> Any:
    """An S3 client of boto3 (installed: abort_uploads checked) that sees what obstore sees:
    the same endpoint, region and credentials (exported keys before a profile, as
    ``_profile_credentials``), with short timeouts (a clean-up must not hold a pack up)."""
    import boto3
    import botocore.session
    from botocore.config import Config

    keys = os.environ.get("AWS_ACCESS_KEY_ID")
    if keys:  # as obstore: exported keys, and no profile looked up (AWS_PROFILE left aside)
        session = boto3.Session(
            botocore_session=botocore.session.Session(session_vars={"profile": (None,) * 4}),
            aws_access_key_id=keys,
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=os.environ.get("AWS_SESSION_TOKEN"),
        )
    else:
        session = boto3.Session(profile_name=os.environ.get("AWS_PROFILE") or None)
    return session.client(
        "s3",
        endpoint_url=endpoint or endpoint_url() or os.environ.get("AWS_ENDPOINT"),
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        config=Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 3}),
    )


def _profile_credentials() -> Any:
    """``AWS_PROFILE`` (profiles and SSO in ``~/.aws``) through boto3, which obstore does not
    read by itself; None when keys are exported or no profile is named."""
    profile = os.environ.get("AWS_PROFILE")
    if not profile or os.environ.get("AWS_ACCESS_KEY_ID"):
        return None
    try:
        import boto3
        from botocore.exceptions import BotoCoreError
        from obstore.auth.boto3 import Boto3CredentialProvider
    except ImportError:
        raise UsageError(
            f"AWS_PROFILE={profile} needs boto3 to read ~/.aws (pip install "
            "'streaming-tar-compressor[profiles]'), or export AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY instead"
        ) from None
    try:
        return Boto3CredentialProvider(boto3.Session(profile_name=profile))
    except BotoCoreError as exc:
        raise UsageError(f"AWS_PROFILE={profile}: {exc}") from exc


_MEMORY: list[MemoryStore] = []
_MEMORY_LOCK = threading.Lock()


def _memory_store() -> MemoryStore:
    with _MEMORY_LOCK:
        if not _MEMORY:
            _MEMORY.append(MemoryStore())
        return _MEMORY[0]


def _info(key: str, meta: Any) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=int(meta["size"]),
        etag=meta.get("e_tag"),
        modified=meta["last_modified"].timestamp(),
    )


def _may_change(answer: str) -> bool:
    """Whether asking again may get another answer (see RETRYABLE_STATUSES); with no status,
    whether the request or its answer was lost on the way."""
    found = STATUS.search(answer)
    if found is None:
        return LOST_ON_THE_WAY.search(answer) is not None
    status = int(found.group(1))
    return status in RETRYABLE_STATUSES or (
        status == 400 and any(code in answer for code in DAMAGED_ON_THE_WAY)
    )


def is_full(error: str) -> bool:
    """Whether the store said it has no room left: FULL_STATUS, or one of FULL_CODES as the
    error's ``<Code>`` (not anywhere in the text: a key may be named "QuotaExceeded")."""
    found = STATUS.search(error)
    code = ERROR_CODE.search(error)
    return (found is not None and int(found.group(1)) == FULL_STATUS) or (
        code is not None and code.group(1).endswith(FULL_CODES)
    )


def _first_line(error: BaseException) -> str:
    """obstore's messages carry a multi-line debug dump; the first line says what happened."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def iter_ranges(size: int, piece: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` pieces of at most ``piece`` bytes covering ``size`` bytes."""
    for start in range(0, size, piece):
        yield start, min(size, start + piece)
