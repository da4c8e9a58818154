"""Time-based one-time passwords (RFC 6238): SHA-1, 6 digits, 30-second steps, which is what
authenticator apps and AWS virtual MFA devices use; and the QR code that provisions them.

The home of ``pyotp`` and ``segno``. Time is always a parameter: a step is
``floor(unix time / 30)`` (RFC 6238 section 4.2), and searches take the steps to try.
"""

from __future__ import annotations

import hmac
import io
from collections.abc import Iterable
from datetime import datetime

import pyotp
import segno

STEP_SECONDS = 30
DIGITS = 6


def new_seed() -> str:
    """A fresh random seed, base32 (160 bits, the HMAC-SHA-1 key size RFC 4226 section 4
    recommends)."""
    return pyotp.random_base32(32)


def step_at(now: datetime) -> int:
    """The time step that contains ``now`` (RFC 6238 section 4.2, T0 = 0, X = 30)."""
    return int(now.timestamp()) // STEP_SECONDS


def code_at(seed: str, step: int) -> str:
    """The 6-digit code of ``seed`` for time step ``step``."""
    return pyotp.TOTP(seed, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step)


def is_code(text: str) -> bool:
    """Whether ``text`` has the shape of a code (six ASCII digits)."""
    return len(text) == DIGITS and text.isascii() and text.isdigit()


def find_step(seed: str, code: str, steps: Iterable[int]) -> int | None:
    """The first of ``steps`` whose code is ``code``, or ``None``."""
    totp = pyotp.TOTP(seed, digits=DIGITS, interval=STEP_SECONDS)
    for step in steps:
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def find_consecutive(seed: str, first: str, second: str, steps: Iterable[int]) -> int | None:
    """The step ``s`` among ``steps`` with ``first`` the code of ``s`` and ``second`` the code
    of ``s + 1``; returns the step of ``second`` (the later one), or ``None``."""
    totp = pyotp.TOTP(seed, digits=DIGITS, interval=STEP_SECONDS)
    for step in steps:
        if hmac.compare_digest(totp.generate_otp(step), first) and (
            hmac.compare_digest(totp.generate_otp(step + 1), second)
        ):
            return step + 1
    return None


def provisioning_uri(seed: str, label: str, issuer: str) -> str:
    """The ``otpauth://totp/…`` URI authenticator apps read from a QR code (Google
    Authenticator's "Key Uri Format")."""
    return pyotp.TOTP(seed, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=label, issuer_name=issuer
    )


def qr_png(text: str) -> bytes:
    """A PNG image of a QR code holding ``text``."""
    out = io.BytesIO()
    segno.make_qr(text, error="m").save(out, kind="png", scale=4, border=4)
    return out.getvalue()
