"""A real SAML identity provider for the tests: pysaml2's IdP in a small Flask app.

    python -m tests.support.saml_idp --port 8181 --dir D [--sp-entity-id E] [--acs URL]

``D`` holds ``idp.key`` and ``idp.crt`` (:func:`tests.support.saml_attacks.write_keypair`) and
``users.json``, read on every request so tests can add users while it runs::

    {"alice": {"name_id": "alice-0001", "attributes": {"https://aws.amazon.com/SAML/...": [...]}}}

- ``GET /metadata``: the IdP's metadata (entity id ``http://127.0.0.1:<port>/metadata``);
- ``GET /sso/idp-initiated?user=alice[&alg=sha1][&sp=ENTITY][&encrypt=1]``: an IdP-initiated
  login (no ``InResponseTo``): the HTML form that auto-submits the signed Response (and signed
  Assertion) to the SP's ACS URL (``sp``: an SP whose metadata was loaded, else the AWS one).
  SHA-256 unless ``alg=sha1`` (pysaml2's own default, kept to test that the broker refuses it);
  ``encrypt=1`` encrypts the assertion to the SP's encryption certificate (AES-256-CBC, RSA-OAEP),
  ``encrypt_to=FILE`` to the certificate in ``D/FILE`` instead.
- ``GET /sso?SAMLRequest=...`` (HTTP-Redirect binding): an SP-initiated login. pysaml2 parses
  the AuthnRequest (and checks its signature when started with ``--want-signed-requests``,
  which its metadata then says); the page is a login form (user name), and ``POST /sso/login``
  answers with the auto-submitting HTTP-POST form, ``InResponseTo`` the request's id. A user
  with ``"encrypt": true`` in ``users.json`` gets an encrypted assertion.
- ``GET /slo?SAMLRequest=...`` (HTTP-Redirect binding): SP-initiated single logout. pysaml2
  parses the LogoutRequest (it must be signed; its signature is checked with the SP's
  certificate from its metadata), notes it in ``D/logouts.json`` and redirects to the SP's
  ``SingleLogoutService`` with a signed LogoutResponse (Success). A user with
  ``"logout_in_response_to": "X"`` gets one answering ``X`` instead (for negative tests).
- ``POST /sp-metadata`` (body: an SP's metadata document): loads it, so that the IdP knows
  that SP's ACS URL and encryption certificates (tests post the broker's own SP metadata).

Assertions are encrypted with AES-256-CBC (pysaml2's default is 3DES: its template and
xmlsec1's session key are both set here) and ``encrypt_assertion_self_contained=False``, the
form python3-saml decrypts.

pysaml2 signs with SHA-1 unless ``signing_algorithm``/``digest_algorithm`` are set inside
``service.idp`` (set at the top level they are ignored). It runs in its own process:
importing it warns (``CryptographyDeprecationWarning``), which the test run treats as an
error. :class:`IdpProcess` starts and stops it.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

AWS_ENTITY_ID = "urn:amazon:webservices"
AWS_ACS_URL = "https://signin.aws.amazon.com/saml"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
REPO = Path(__file__).resolve().parents[2]


def sp_metadata(entity_id: str, acs_url: str) -> str:
    """The broker as pysaml2 sees it: an SP that wants signed assertions at ``acs_url``."""
    return f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity_id}">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"
                      WantAssertionsSigned="true">
    <md:AssertionConsumerService Binding="{POST}" Location="{acs_url}" index="1"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"""


AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"


def _aes_encryption() -> None:
    """pysaml2 encrypts with 3DES: make its template name AES-256-CBC and xmlsec1 make an
    AES-256 session key (both are module-level defaults in pysaml2)."""
    import functools

    from saml2 import entity, sigver

    entity.pre_encryption_part = functools.partial(  # type: ignore[assignment]
        sigver.pre_encryption_part, msg_enc=AES256_CBC
    )
    original = sigver.SecurityContext.encrypt_assertion

    def encrypt_assertion(
        self: Any,
        statement: Any,
        enc_key: Any,
        template: Any,
        key_type: str = "aes-256",
        node_xpath: Any = None,
    ) -> Any:
        return original(self, statement, enc_key, template, "aes-256", node_xpath)

    sigver.SecurityContext.encrypt_assertion = encrypt_assertion  # type: ignore[method-assign]


def create_app(
    base_url: str,
    directory: Path,
    sp_entity_id: str,
    acs_url: str,
    want_signed_requests: bool = False,
) -> Any:
    from flask import Flask, Response, abort, request
    from saml2 import xmldsig
    from saml2.config import IdPConfig
    from saml2.metadata import create_metadata_string
    from saml2.saml import NameID
    from saml2.samlp import logout_response_from_string
    from saml2.server import Server

    _aes_encryption()

    (directory / "sp.xml").write_text(sp_metadata(sp_entity_id, acs_url))
    config = IdPConfig()
    config.load(
        {
            "entityid": f"{base_url}/metadata",
            "service": {
                "idp": {
                    "endpoints": {
                        "single_sign_on_service": [
                            (f"{base_url}/sso", POST),
                            (f"{base_url}/sso", REDIRECT),
                        ],
                        "single_logout_service": [(f"{base_url}/slo", REDIRECT)],
                    },
                    "name_id_format": [PERSISTENT],
                    "want_authn_requests_signed": want_signed_requests,
                    "signing_algorithm": xmldsig.SIG_RSA_SHA256,
                    "digest_algorithm": xmldsig.DIGEST_SHA256,
                    "sign_response": True,
                    "sign_assertion": True,
                    "policy": {
                        "default": {
                            "lifetime": {"minutes": 5},
                            "attribute_restrictions": None,
                            "name_form": "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
                        }
                    },
                }
            },
            "key_file": str(directory / "idp.key"),
            "cert_file": str(directory / "idp.crt"),
            "metadata": {"local": [str(directory / "sp.xml")]},
            "xmlsec_binary": "/usr/bin/xmlsec1",
        }
    )
    server = Server(config=config)
    metadata = create_metadata_string(None, config=config, valid=None)
    app = Flask("saml-idp")

    @app.get("/metadata")
    def get_metadata() -> Response:
        return Response(metadata, content_type="application/samlmetadata+xml")

    def users() -> dict[str, Any]:
        found: dict[str, Any] = json.loads((directory / "users.json").read_text())
        return found

    def answer(
        user: dict[str, Any],
        in_response_to: str | None,
        sp: str,
        destination: str,
        relay_state: str,
        sha1: bool = False,
        encrypt: bool = False,
        encrypt_to: str | None = None,
    ) -> Response:
        algorithms: dict[str, str] = (
            {"sign_alg": xmldsig.SIG_RSA_SHA1, "digest_alg": xmldsig.DIGEST_SHA1} if sha1 else {}
        )
        encryption: dict[str, Any] = (
            {"encrypt_assertion": True, "encrypt_assertion_self_contained": False}
            if encrypt or encrypt_to
            else {}
        )
        if encrypt_to:
            encryption["encrypt_cert_assertion"] = (directory / Path(encrypt_to).name).read_text()
        response = server.create_authn_response(
            user["attributes"],
            in_response_to=in_response_to,
            destination=destination,
            sp_entity_id=sp,
            name_id=NameID(format=PERSISTENT, text=user["name_id"]),
            authn={
                "class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
            },
            sign_response=True,
            sign_assertion=True,
            **algorithms,
            **encryption,
        )
        info = server.apply_binding(
            POST, str(response), destination, relay_state=relay_state, response=True
        )
        return Response(info["data"], content_type="text/html")

    def acs_of(sp: str) -> str:
        services = server.metadata.assertion_consumer_service(sp, POST)
        if not services:
            abort(404)
        return str(services[0]["location"])

    @app.post("/sp-metadata")
    def load_sp_metadata() -> Response:
        server.metadata.load("inline", request.get_data(as_text=True))
        return Response("loaded\n", content_type="text/plain")

    @app.get("/sso/idp-initiated")
    def idp_initiated() -> Response:
        user = users().get(request.args.get("user", ""))
        if user is None:
            abort(404)
        sp = request.args.get("sp")
        return answer(
            user,
            None,
            sp or sp_entity_id,
            acs_of(sp) if sp else acs_url,
            "",
            sha1=request.args.get("alg") == "sha1",
            encrypt=request.args.get("encrypt") == "1",
            encrypt_to=request.args.get("encrypt_to"),
        )

    @app.get("/sso")
    def sso_redirect() -> Response:
        args = {
            k: request.args.get(k, "") for k in ("SAMLRequest", "RelayState", "SigAlg", "Signature")
        }
        try:
            parsed = server.parse_authn_request(
                args["SAMLRequest"],
                REDIRECT,
                relay_state=args["RelayState"] or None,
                sigalg=args["SigAlg"] or None,
                signature=args["Signature"] or None,
            )
        except Exception as error:  # pysaml2 raises many kinds for a bad request
            return Response(f"bad AuthnRequest: {html.escape(str(error))}", 400)
        message = parsed.message
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in args.items()
        )
        format_asked = message.name_id_policy.format if message.name_id_policy else ""
        return Response(
            "<!doctype html><title>pysaml2 IdP login</title>"
            f"<p id=request data-id={html.escape(message.id)} "
            f"data-format='{html.escape(format_asked or '')}'>"
            f"Sign in to {html.escape(message.issuer.text)}</p>"
            f'<form method=post action="{base_url}/sso/login">{hidden}'
            "<label>User <input name=user id=user></label>"
            "<button type=submit id=login>Sign in</button></form>",
            content_type="text/html",
        )

    @app.post("/sso/login")
    def sso_login() -> Response:
        form = {
            k: request.form.get(k, "") for k in ("SAMLRequest", "RelayState", "SigAlg", "Signature")
        }
        parsed = server.parse_authn_request(
            form["SAMLRequest"],
            REDIRECT,
            relay_state=form["RelayState"] or None,
            sigalg=form["SigAlg"] or None,
            signature=form["Signature"] or None,
        )
        user = users().get(request.form.get("user", ""))
        if user is None:
            return Response("unknown user", 403)
        message = parsed.message
        sp = message.issuer.text
        destination = message.assertion_consumer_service_url or acs_of(sp)
        return answer(
            user,
            message.id,
            sp,
            destination,
            form["RelayState"],
            encrypt=bool(user.get("encrypt")),
        )

    @app.get("/slo")
    def slo_redirect() -> Response:
        args = {
            k: request.args.get(k, "") for k in ("SAMLRequest", "RelayState", "SigAlg", "Signature")
        }
        if not args["Signature"]:
            return Response("unsigned LogoutRequest", 400)
        try:
            parsed = server.parse_logout_request(
                args["SAMLRequest"],
                REDIRECT,
                relay_state=args["RelayState"] or None,
                sigalg=args["SigAlg"],
                signature=args["Signature"],
            )
        except Exception as error:  # pysaml2 raises many kinds for a bad request
            return Response(f"bad LogoutRequest: {html.escape(str(error))}", 400)
        message = parsed.message
        if message is None or message.name_id is None:
            return Response("bad LogoutRequest: no NameID", 400)
        user = next((u for u in users().values() if u["name_id"] == message.name_id.text), None)
        if user is None:
            return Response("unknown NameID", 403)
        logged = directory / "logouts.json"
        known = json.loads(logged.read_text()) if logged.exists() else []
        known.append(
            {
                "name_id": message.name_id.text,
                "format": message.name_id.format,
                "session_index": [i.text for i in message.session_index],
                "issuer": message.issuer.text,
            }
        )
        logged.write_text(json.dumps(known))
        response = logout_response_from_string(
            str(server.create_logout_response(message, [REDIRECT]))
        )
        if user.get("logout_in_response_to"):  # a test's wrong answer, signed all the same
            response.in_response_to = user["logout_in_response_to"]
        info = server.apply_binding(
            REDIRECT,
            str(response),
            response.destination,
            args["RelayState"],
            response=True,
            sign=True,
            sigalg=xmldsig.SIG_RSA_SHA256,
        )
        return Response("", 302, headers=dict(info["headers"]))

    return app


def saml_response_from_form(page: str) -> str:
    """The base64 ``SAMLResponse`` of an HTTP-POST binding form."""
    match = re.search(r'name="SAMLResponse"\s+value="([^"]+)"', page)
    if match is None:
        raise ValueError("no SAMLResponse in the page")
    return html.unescape(match.group(1))


class IdpProcess:
    """The IdP in a process of its own on 127.0.0.1, stopped by its own PID."""

    def __init__(
        self,
        directory: Path,
        port: int,
        sp_entity_id: str = AWS_ENTITY_ID,
        acs_url: str = AWS_ACS_URL,
        want_signed_requests: bool = False,
    ) -> None:
        self.directory = directory
        self.url = f"http://127.0.0.1:{port}"
        self.entity_id = f"{self.url}/metadata"
        self.log = open(directory / "idp.log", "w")  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.saml_idp",
                "--port",
                str(port),
                "--dir",
                str(directory),
                "--sp-entity-id",
                sp_entity_id,
                "--acs",
                acs_url,
                *(["--want-signed-requests"] if want_signed_requests else []),
            ],
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.metadata()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        "the SAML IdP did not start:\n" + (directory / "idp.log").read_text()
                    ) from None
                time.sleep(0.1)

    def metadata(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metadata", timeout=5) as answer:
            return str(answer.read().decode("utf-8"))

    def add_users(self, users: dict[str, Any]) -> None:
        """Add (or replace) users; the IdP reads them on its next login."""
        path = self.directory / "users.json"
        known = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**known, **users}))

    def login(self, user: str, alg: str = "sha256", encrypt_to: str | None = None) -> str:
        """The base64 SAML response of an IdP-initiated login of ``user`` (its assertion
        encrypted to the certificate ``encrypt_to``, PEM, if given)."""
        url = f"{self.url}/sso/idp-initiated?user={user}&alg={alg}"
        if encrypt_to is not None:
            name = f"enc-{abs(hash(encrypt_to))}.crt"
            (self.directory / name).write_text(encrypt_to)
            url += f"&encrypt_to={name}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            return saml_response_from_form(answer.read().decode("utf-8"))

    def load_sp_metadata(self, document: str) -> None:
        """Tell the IdP about an SP (its ACS URL and encryption certificates)."""
        request = urllib.request.Request(
            f"{self.url}/sp-metadata", data=document.encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def logouts(self) -> list[dict[str, Any]]:
        """The LogoutRequests the IdP accepted, oldest first."""
        path = self.directory / "logouts.json"
        found: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--sp-entity-id", default=AWS_ENTITY_ID)
    parser.add_argument("--acs", default=AWS_ACS_URL)
    parser.add_argument("--want-signed-requests", action="store_true")
    args = parser.parse_args()
    users = args.dir / "users.json"
    if not users.exists():
        users.write_text("{}")
    app = create_app(
        f"http://127.0.0.1:{args.port}",
        args.dir,
        args.sp_entity_id,
        args.acs,
        args.want_signed_requests,
    )
    app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
