"""TOTP against the published test vectors of RFC 6238 (appendix B, SHA-1), truncated to the
six digits virtual MFA devices use, and the provisioning QR code."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fedbroker.credentials import totp

# RFC 6238 appendix B: the SHA-1 seed is the ASCII "12345678901234567890".
RFC_SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("unix_time", "eight_digits"), RFC_VECTORS)
def test_rfc_6238_vectors(unix_time: int, eight_digits: str) -> None:
    step = totp.step_at(datetime.fromtimestamp(unix_time, UTC))
    assert step == unix_time // 30
    assert totp.code_at(RFC_SEED, step) == eight_digits[-6:]


def test_searches_find_the_step_of_a_code() -> None:
    step = 1234567890 // 30
    code, following = totp.code_at(RFC_SEED, step), totp.code_at(RFC_SEED, step + 1)
    assert totp.find_step(RFC_SEED, code, range(step - 2, step + 3)) == step
    assert totp.find_step(RFC_SEED, code, range(step + 1, step + 3)) is None
    assert totp.find_consecutive(RFC_SEED, code, following, range(step - 5, step + 5)) == step + 1
    assert totp.find_consecutive(RFC_SEED, following, code, range(step - 5, step + 5)) is None


def test_codes_and_seeds_have_the_expected_shape() -> None:
    seed = totp.new_seed()
    assert len(seed) == 32 and seed.isupper() and seed != totp.new_seed()
    assert totp.is_code("012345")
    for bad in ("12345", "1234567", "12345a", "١٢٣٤٥٦", ""):
        assert not totp.is_code(bad)


def test_qr_code_is_a_png_of_the_provisioning_uri() -> None:
    uri = totp.provisioning_uri(RFC_SEED, "alice@123456789012", "fedbroker")
    assert uri.startswith("otpauth://totp/fedbroker:alice%40123456789012?secret=" + RFC_SEED)
    png = totp.qr_png(uri)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
