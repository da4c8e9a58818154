"""How the broker treats one SAML provider's responses: its settings beside the metadata.

    "idp_initiated": false            browser sign-in may start at the IdP (no InResponseTo)
    "assertion_encryption_mode": "Allowed" | "Required"    IAM's own setting
    "allow_sha1": false               accept SHA-1 signatures and digests
    "clock_skew_seconds": 300         allowed disagreement of clocks on Conditions (0-900)

Set with ``fedbroker sso configure-saml`` (and ``AssertionEncryptionMode`` through IAM's
Create/UpdateSAMLProvider); read by AssumeRoleWithSAML and the browser sign-in alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from fedbroker.directory.model import Entity

DEFAULT_CLOCK_SKEW = 300
MAX_CLOCK_SKEW = 900


@dataclass(frozen=True, slots=True)
class SamlOptions:
    idp_initiated: bool = False
    require_encryption: bool = False
    allow_sha1: bool = False
    clock_skew: timedelta = timedelta(seconds=DEFAULT_CLOCK_SKEW)


def options_of(provider: Entity) -> SamlOptions:
    attrs = provider.attrs
    skew = attrs.get("clock_skew_seconds", DEFAULT_CLOCK_SKEW)
    seconds = skew if isinstance(skew, int) and 0 <= skew <= MAX_CLOCK_SKEW else DEFAULT_CLOCK_SKEW
    return SamlOptions(
        idp_initiated=attrs.get("idp_initiated") is True,
        require_encryption=attrs.get("assertion_encryption_mode") == "Required",
        allow_sha1=attrs.get("allow_sha1") is True,
        clock_skew=timedelta(seconds=seconds),
    )
