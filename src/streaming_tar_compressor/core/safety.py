"""What extraction refuses: each check names the member and the rule it breaks.

These checks are lexical; the file writer adds the filesystem half (it never follows a
symlink, so no earlier member or pre-existing link can redirect a write).
"""

from __future__ import annotations

from ..errors import UnsafeMemberError
from ..models import MemberKind, TarMember

# Special bits are always dropped; the umask is applied unless same_permissions (tar -p) is asked.
PERMISSION_BITS = 0o777
# Linux PATH_MAX less its NUL. GNU tar and tarfile open a member by its whole name, so a longer
# one fails there too (ENAMETOOLONG); here, where folders are opened one by one, it would cost
# time and memory per folder level (a pax name may hold 1 MiB of "a/a/…").
MAX_NAME_BYTES = 4095

_REFUSED_KINDS = {
    MemberKind.CHAR_DEVICE: "device nodes are never created",
    MemberKind.BLOCK_DEVICE: "device nodes are never created",
    MemberKind.FIFO: "FIFOs are never created",
}


def member_parts(member: TarMember) -> tuple[str, ...]:
    """The member's path as components below the output directory; () is the directory itself."""
    return _relative_parts(member.name, member.name)


def _relative_parts(path: str, member_name: str) -> tuple[str, ...]:
    if "\0" in path:
        raise UnsafeMemberError(member_name, "names may not contain NUL")
    _check_length(path, member_name)
    if path.startswith("/"):
        raise UnsafeMemberError(member_name, "absolute names are refused")
    parts = path.split("/")
    if "" in parts or "." in parts:  # most names have neither: no filtering pass for them
        parts = [p for p in parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeMemberError(member_name, "names with '..' are refused")
    return tuple(parts)


def check_member(member: TarMember) -> tuple[str, ...]:
    """Accept the member (returning its path parts) or raise UnsafeMemberError."""
    if member.kind in _REFUSED_KINDS:
        raise UnsafeMemberError(member.name, _REFUSED_KINDS[member.kind])
    parts = member_parts(member)
    if not parts and member.kind is not MemberKind.DIRECTORY:
        raise UnsafeMemberError(member.name, "only a directory may name the output directory")
    if member.kind is MemberKind.SYMLINK:
        check_symlink_target(member, parts)
    return parts


def check_symlink_target(member: TarMember, parts: tuple[str, ...]) -> None:
    """A symlink must point inside the output directory, whatever other links exist.

    Its target may climb with leading ``..`` no higher than the output directory, then only
    descend. A ``..`` after a folder name is refused: that folder may be (or later become) a
    symlink, and ``a/a/../..`` through ``a -> .`` lands outside although it reads as inside.
    With every link of that shape, each one resolves inside, through any chain of them.
    """
    target = member.linkname
    if not target or "\0" in target:
        raise UnsafeMemberError(member.name, "a symlink needs a target without NUL")
    _check_length(target, member.name)
    if target.startswith("/"):
        raise UnsafeMemberError(member.name, "symlinks to absolute paths are refused")
    steps = [p for p in target.split("/") if p not in ("", ".")]
    climbs = 0
    while climbs < len(steps) and steps[climbs] == "..":
        climbs += 1
    if ".." in steps[climbs:]:
        raise UnsafeMemberError(member.name, "a symlink target may use '..' only at its start")
    if climbs > len(parts) - 1:
        raise UnsafeMemberError(member.name, "symlink points outside the output directory")


def hardlink_parts(member: TarMember) -> tuple[str, ...]:
    """The path parts of the member a hardlink points to (stored as an archive member name)."""
    parts = _relative_parts(member.linkname, member.name)
    if not parts:
        raise UnsafeMemberError(member.name, "a hardlink needs a target member")
    return parts


def _check_length(path: str, member_name: str) -> None:
    """Counted in the bytes the name has on disk: names that are not UTF-8 keep their bytes
    (the reader decodes them with surrogateescape, and ``os`` encodes them back)."""
    if path.isascii():  # most names: one byte a character, nothing to validate
        size = len(path)
    else:
        try:
            size = len(path.encode("utf-8", "surrogateescape"))
        except UnicodeEncodeError:
            raise UnsafeMemberError(member_name, "names must be UTF-8 or raw bytes") from None
    if size > MAX_NAME_BYTES:
        raise UnsafeMemberError(
            member_name, f"names and link targets longer than {MAX_NAME_BYTES} bytes are refused"
        )


def safe_mode(mode: int, umask: int = 0) -> int:
    """The permission bits to restore: special bits dropped, then the ``umask`` applied (0 to
    keep the stored bits, as ``tar -p`` does)."""
    return mode & PERMISSION_BITS & ~umask
