"""Temporary access key ids carry their account in AWS's layout: the public decoding (the one
tools such as trufflehog use) gives AWS's own example back, and gives the broker's account back
from the broker's ids; ids not minted this way decode to nothing."""

from __future__ import annotations

import base64
import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedbroker.credentials.access_key_ids import (
    account_of_temporary_key_id,
    temporary_access_key_id,
)

# Aidan Steele's and Tal Be'ery's example: a real AWS temporary key id and the account that
# sts:GetAccessKeyInfo answered for it.
AWS_EXAMPLE = ("ASIAY34FZKBOKMUTVV7A", "609629065308")


def public_decoding(key_id: str) -> str:
    """The account in an AWS key id, as published (not the broker's code)."""
    head = int.from_bytes(base64.b32decode(key_id[4:])[:6], "big")
    return f"{(head & 0x7FFFFFFFFF80) >> 7:012d}"


def test_the_public_decoding_reads_aws_own_example() -> None:
    key_id, account = AWS_EXAMPLE
    assert public_decoding(key_id) == account


@given(st.integers(min_value=0, max_value=10**12 - 1))
def test_minted_ids_decode_to_their_account(number: int) -> None:
    account = f"{number:012d}"
    key_id = temporary_access_key_id(account)
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}", key_id)
    assert public_decoding(key_id) == account
    assert account_of_temporary_key_id(key_id) == account


def test_ids_of_one_account_differ() -> None:
    ids = {temporary_access_key_id("123456789012") for _ in range(2000)}
    assert len(ids) == 2000


def test_other_ids_decode_to_nothing() -> None:
    minted = temporary_access_key_id("123456789012")
    assert account_of_temporary_key_id(AWS_EXAMPLE[0]) is None  # AWS's own: no broker check
    assert account_of_temporary_key_id("AKIA" + minted[4:]) is None  # not a temporary key
    assert account_of_temporary_key_id(minted.lower()) is None
    assert account_of_temporary_key_id(minted[:-1]) is None
    assert account_of_temporary_key_id(minted + "A") is None
    assert account_of_temporary_key_id("ASIA" + "0" * 16) is None  # not base32
    # A mistyped id is caught by the check for all but about 1 in 128 typos.
    alphabet = string.ascii_uppercase + "234567"
    typos = [
        minted[:i] + c + minted[i + 1 :] for i in range(4, 20) for c in alphabet if c != minted[i]
    ]
    accepted = [t for t in typos if account_of_temporary_key_id(t) is not None]
    assert len(accepted) < len(typos) / 32


@pytest.mark.parametrize("bad", ["12345678901", "1234567890123", "12345678901x", ""])
def test_only_twelve_digit_accounts(bad: str) -> None:
    with pytest.raises(ValueError):
        temporary_access_key_id(bad)
