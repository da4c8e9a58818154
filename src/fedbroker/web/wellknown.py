"""OpenID discovery for the tokens the broker signs (GetWebIdentityToken): relying parties
verify them with ``/.well-known/openid-configuration`` and the JWKS it names."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from fedbroker.iam.context import Services

blueprint = Blueprint("wellknown", __name__)


def _services() -> Services:
    services: Services = current_app.extensions["fedbroker.services"]
    return services


@blueprint.get("/.well-known/openid-configuration")
def openid_configuration() -> Response:
    services = _services()
    issuer = services.issuer or ""
    response = jsonify(
        {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES384", "ES256"],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "nbf",
                "jti",
                "principal_id",
                "account_id",
                "source_identity",
                "https://aws.amazon.com/tags",
            ],
        }
    )
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@blueprint.get("/.well-known/jwks.json")
def jwks() -> Response:
    services = _services()
    assert services.keyring is not None
    response = jsonify(services.keyring.jwks(services.clock.now()))
    # Short enough that a rotated key is picked up quickly by verifiers that cache.
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
