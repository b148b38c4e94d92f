"""Minimal bech32 (BIP-173) decoding for NIP-19 ``npub`` keys in configuration."""

from __future__ import annotations

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= _GENERATOR[i] if ((top >> i) & 1) else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]


def _convert_bits(data: list[int], from_bits: int, to_bits: int) -> bytes:
    acc = bits = 0
    out = bytearray()
    maxv = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if bits >= from_bits or ((acc << (to_bits - bits)) & maxv):
        raise ValueError("invalid padding")
    return bytes(out)


def bech32_decode(text: str) -> tuple[str, bytes]:
    """Decode ``text`` into (human-readable part, data bytes); raises ValueError if invalid."""
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixed case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise ValueError("no separator")
    hrp, data_part = text[:pos], text[pos + 1 :]
    try:
        data = [_CHARSET.index(c) for c in data_part]
    except ValueError:
        raise ValueError("invalid character") from None
    if _polymod(_hrp_expand(hrp) + data) != 1:
        raise ValueError("bad checksum")
    return hrp, _convert_bits(data[:-6], 5, 8)


def bech32_encode(hrp: str, payload: bytes) -> str:
    """Encode ``payload`` with the human-readable part ``hrp`` (e.g. an npub)."""
    acc = bits = 0
    data: list[int] = []
    for byte in payload:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    polymod = _polymod(_hrp_expand(hrp) + data + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data + checksum)


def normalise_pubkey(value: str) -> str:
    """A hex pubkey from hex or ``npub1…``; raises ValueError with the reason otherwise."""
    value = value.strip()
    if value.startswith("npub1"):
        hrp, data = bech32_decode(value)
        if hrp != "npub" or len(data) != 32:
            raise ValueError("not a 32-byte npub")
        return data.hex()
    lowered = value.lower()
    if len(lowered) != 64 or any(c not in "0123456789abcdef" for c in lowered):
        raise ValueError("expected 64 hex characters or an npub1… key")
    return lowered
