"""The broker as a SAML service provider: who it says it is to identity providers.

AWS's own values are the defaults, so an IdP already configured for AWS (its relying party
trust, its "Amazon Web Services" application) works against the broker unchanged:

- ``entity_id`` ``urn:amazon:webservices``: the ``Audience`` an assertion must name;
- ``acs_url`` ``https://signin.aws.amazon.com/saml``: the ``Recipient`` of the assertion's
  bearer ``SubjectConfirmationData`` and, when present, the response's ``Destination``.

A broker that its IdPs address by its own name sets both (settings ``saml_entity_id`` and
``saml_acs_url``). Standard library only, so that the services can carry it without
importing the XML security stack.
"""

from __future__ import annotations

from dataclasses import dataclass

AWS_ENTITY_ID = "urn:amazon:webservices"
AWS_ACS_URL = "https://signin.aws.amazon.com/saml"


@dataclass(frozen=True, slots=True)
class ServiceProvider:
    entity_id: str = AWS_ENTITY_ID
    acs_url: str = AWS_ACS_URL
    sls_url: str | None = None  # single logout (browser sign-in only; HTTP-Redirect binding)
