"""Bech32 (BIP 173) as age uses it: no length limit, one case per string, checksum over the
lower case. age keys are the only Bech32 we read, so this is the whole codec (30 lines did
not justify a dependency, and the reference package caps strings at 90 characters)."""

from __future__ import annotations

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_VALUES = {char: value for value, char in enumerate(_CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate(_GENERATOR):
            if top >> bit & 1:
                check ^= generator
    return check


def _expanded(hrp: str) -> list[int]:
    return [ord(char) >> 5 for char in hrp] + [0] + [ord(char) & 31 for char in hrp]


def encode(hrp: str, data: bytes) -> str:
    """``data`` under the human-readable part ``hrp``, in lower case."""
    hrp = hrp.lower()
    groups = _regroup(data, 8, 5, pad=True)
    checksum = _polymod([*_expanded(hrp), *groups, 0, 0, 0, 0, 0, 0]) ^ 1
    groups += [checksum >> 5 * (5 - i) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[group] for group in groups)


def decode(text: str) -> tuple[str, bytes]:
    """(human-readable part in lower case, data); ValueError for anything not canonical."""
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixed case")
    text = text.lower()
    hrp, separator, rest = text.rpartition("1")
    if not separator or not hrp or len(rest) < 6:
        raise ValueError("no separator, no human-readable part, or too short")
    if any(not 33 <= ord(char) <= 126 for char in hrp):
        raise ValueError("a character outside the human-readable range")
    try:
        groups = [_VALUES[char] for char in rest]
    except KeyError:
        raise ValueError("a character outside the Bech32 alphabet") from None
    if _polymod([*_expanded(hrp), *groups]) != 1:
        raise ValueError("bad checksum")
    return hrp, bytes(_regroup(bytes(groups[:-6]), 5, 8, pad=False))


def _regroup(data: bytes, source: int, target: int, *, pad: bool) -> list[int]:
    """Bits regrouped from ``source``-bit to ``target``-bit values. Unpadded, leftover bits
    must be fewer than ``source`` and all zero (canonical)."""
    accumulator = bits = 0
    out = []
    for value in data:
        accumulator = accumulator << source | value
        bits += source
        while bits >= target:
            bits -= target
            out.append(accumulator >> bits & (1 << target) - 1)
    if pad:
        if bits:
            out.append(accumulator << target - bits & (1 << target) - 1)
    elif bits >= source or accumulator & (1 << bits) - 1:
        raise ValueError("non-zero or excess padding")
    return out
