"""Identifiers in IAM's formats: 12-digit accounts, unique ids, access key ids and secrets."""

from __future__ import annotations

import secrets
import string

_UPPER_ALNUM = string.ascii_uppercase + string.digits
_BASE32 = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


def new_account_id() -> str:
    return str(secrets.randbelow(9 * 10**11) + 10**11)


def new_unique_id(prefix: str) -> str:
    """``AIDA…`` / ``AGPA…`` / ``AROA…`` / ``ANPA…``: 21 characters, as IAM's unique ids."""
    return prefix + "".join(secrets.choice(_UPPER_ALNUM) for _ in range(17))


def new_access_key_id(temporary: bool = False) -> str:
    """``AKIA…`` (long-term) or ``ASIA…`` (temporary), 20 characters."""
    return ("ASIA" if temporary else "AKIA") + "".join(
        secrets.choice(_UPPER_ALNUM) for _ in range(16)
    )


def new_secret_access_key() -> str:
    """40 characters, the shape of an AWS secret access key."""
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))


def new_request_id() -> str:
    raw = secrets.token_hex(16)
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
