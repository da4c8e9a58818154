"""Temporary access key ids that say which account they belong to, as AWS's do.

AWS encodes the account in every access key id issued since 2019, which is how
``sts:GetAccessKeyInfo`` answers for any key id, not only the caller's own (AWS STS API
Reference, "GetAccessKeyInfo"; the layout was described publicly by Aidan Steele and Tal
Be'ery, and tools that decode it, such as trufflehog, read it this way). After the 4-character
prefix, the 16 characters are the base32 (RFC 4648) form of 80 bits::

    bit 79      0
    bits 78-39  the 12-digit account id (40 bits: every 12-digit number fits)
    bits 38-32  AWS: unspecified. Here: a 7-bit check of the other 73 bits
    bits 31-0   random

The check is fedbroker's: it tells the ids minted this way from ids that were drawn at random
(temporary keys issued before, which live at most 36 hours) and from mistyped ids, so that
:func:`account_of_temporary_key_id` answers ``None`` rather than a made-up account for all
but 1 in 256 of them. Uniqueness of a temporary key id matters to nobody: its session token
is bound to it and carries its own secret, and every cache that holds opened tokens keys them
by the token itself, so 32 random bits per account are plenty, as they are for AWS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re

TEMPORARY_PREFIX = "ASIA"
_ACCOUNT = re.compile(r"\d{12}")
_KEY_ID = re.compile(r"A[SK]IA[A-Z2-7]{16}")
_ACCOUNT_BITS = 40
_CHECK_BITS = 7
_RANDOM_BITS = 32


def _check(account: int, random: int) -> int:
    digest = hashlib.sha256(
        account.to_bytes(5, "big") + random.to_bytes(4, "big"), usedforsecurity=False
    ).digest()
    return digest[0] >> (8 - _CHECK_BITS)


def temporary_access_key_id(account_id: str) -> str:
    """A fresh ``ASIA`` key id for a session of ``account_id`` (12 digits)."""
    if not _ACCOUNT.fullmatch(account_id):
        raise ValueError("an account id is 12 digits")
    account = int(account_id)
    random = int.from_bytes(os.urandom(4), "big")
    value = (
        (account << (_CHECK_BITS + _RANDOM_BITS))
        | (_check(account, random) << _RANDOM_BITS)
        | random
    )
    return TEMPORARY_PREFIX + base64.b32encode(value.to_bytes(10, "big")).decode("ascii")


def account_of_temporary_key_id(key_id: str) -> str | None:
    """The account a temporary key id minted by :func:`temporary_access_key_id` belongs to;
    ``None`` for any other string (not an ``ASIA`` id, or one whose check does not hold)."""
    if not key_id.startswith(TEMPORARY_PREFIX) or not _KEY_ID.fullmatch(key_id):
        return None
    try:
        value = int.from_bytes(base64.b32decode(key_id[4:]), "big")
    except binascii.Error:
        return None
    random = value & ((1 << _RANDOM_BITS) - 1)
    check = (value >> _RANDOM_BITS) & ((1 << _CHECK_BITS) - 1)
    account = value >> (_CHECK_BITS + _RANDOM_BITS)
    if account >> _ACCOUNT_BITS or check != _check(account, random):
        return None
    text = f"{account:012d}"
    return text if _ACCOUNT.fullmatch(text) else None
