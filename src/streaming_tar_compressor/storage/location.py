"""Where an archive lives: a local prefix (``out/backup``) or an object-store URL
(``s3://bucket/path/backup``), told apart before anything is read or written.

A URL names the same objects a local prefix names files: ``NAME.partNNNN``,
``NAME.manifest.json``, ``NAME.sha256`` in the URL's folder. ``file://`` URLs are local
prefixes. Anything that looks like a URL with a scheme we do not know is an error, never a
local folder named ``s3:``.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from ..core.manifest import is_bare_file_name
from ..errors import UsageError

# Schemes obstore opens, by the name users write them with.
REMOTE_SCHEMES = frozenset({"s3", "s3a", "gs", "az", "abfs", "abfss", "memory", "http", "https"})
READ_ONLY_SCHEMES = frozenset({"http", "https"})
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)
_SCHEME_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")


@dataclass(frozen=True, slots=True)
class RemotePrefix:
    """``s3://bucket/path/NAME`` as the folder's URL (``s3://bucket/path``) and ``NAME``."""

    url: str
    scheme: str
    folder: str
    name: str

    @property
    def read_only(self) -> bool:
        return self.scheme in READ_ONLY_SCHEMES

    def key(self, file_name: str) -> str:
        """The URL of one of the archive's objects, for messages."""
        return f"{self.folder}/{file_name}"


def parse_prefix(text: str) -> str | RemotePrefix:
    """A local prefix (returned as a path) or a RemotePrefix; UsageError for what is neither."""
    match = _URL.fullmatch(text)
    if match is None:
        first = text.split("/", 1)[0]
        if _SCHEME_LIKE.fullmatch(first) and "/" in text:
            raise UsageError(
                f"{text!r} looks like a URL without its '//' (write {first}//…), "
                f"or like a local folder named with a colon (write ./{text})"
            )
        return text
    scheme = match.group(1).lower()
    if scheme == "file":
        return _file_path(text)
    if scheme not in REMOTE_SCHEMES:
        known = ", ".join(sorted(f"{s}://" for s in REMOTE_SCHEMES | {"file"}))
        raise UsageError(f"unknown URL scheme {scheme}:// in {text!r}; stc knows {known}")
    parts = urllib.parse.urlsplit(text)
    # abfss://filesystem@account.dfs.core.windows.net/… names, it does not authenticate.
    named_user = parts.username is not None and scheme not in ("abfs", "abfss")
    if named_user or parts.password is not None:
        raise UsageError(
            f"refusing a URL with credentials in it ({scheme}://…@…): they would show in "
            "process lists and logs; set them in the environment (AWS_ACCESS_KEY_ID, …) instead"
        )
    if parts.query or parts.fragment:
        raise UsageError(f"{scheme}:// prefixes take no '?' or '#' part")
    folder, _, name = text.rstrip("/").rpartition("/")
    if not is_bare_file_name(name) or folder.endswith(":/"):
        raise UsageError(
            f"the prefix {text!r} must end in an archive name, like {scheme}://bucket/path/backup"
        )
    return RemotePrefix(url=text, scheme=scheme, folder=folder, name=name)


def _file_path(text: str) -> str:
    parts = urllib.parse.urlsplit(text)
    if parts.netloc not in ("", "localhost"):
        raise UsageError(f"file:// URLs name this machine's files, not {parts.netloc!r}")
    if parts.query or parts.fragment:
        raise UsageError("file:// prefixes take no '?' or '#' part")
    return urllib.parse.unquote(parts.path)
