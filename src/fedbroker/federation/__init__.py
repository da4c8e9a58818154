"""Federation: what other identity providers say, checked before the broker believes it.

Framework-free and storage-free: this layer parses and verifies; the IAM and STS services
decide what to store and whom to trust. ``saml_metadata`` reads a SAML 2.0 identity
provider's metadata document into :class:`~fedbroker.federation.saml_metadata.IdpMetadata`.
"""
