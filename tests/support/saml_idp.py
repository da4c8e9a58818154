"""A real SAML identity provider for the tests: pysaml2's IdP in a small Flask app.

    python -m tests.support.saml_idp --port 8181 --dir D [--sp-entity-id E] [--acs URL]

``D`` holds ``idp.key`` and ``idp.crt`` (:func:`tests.support.saml_attacks.write_keypair`) and
``users.json``, read on every request so tests can add users while it runs::

    {"alice": {"name_id": "alice-0001", "attributes": {"https://aws.amazon.com/SAML/...": [...]}}}

- ``GET /metadata``: the IdP's metadata (entity id ``http://127.0.0.1:<port>/metadata``);
- ``GET /sso/idp-initiated?user=alice[&alg=sha1]``: an IdP-initiated login (no
  ``InResponseTo``): the HTML form that would auto-submit the signed Response (and signed
  Assertion) to the SP's ACS URL. SHA-256 unless ``alg=sha1`` (pysaml2's own default, kept to
  test that the broker refuses it).

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


def create_app(base_url: str, directory: Path, sp_entity_id: str, acs_url: str) -> Any:
    from flask import Flask, Response, abort, request
    from saml2 import xmldsig
    from saml2.config import IdPConfig
    from saml2.metadata import create_metadata_string
    from saml2.saml import NameID
    from saml2.server import Server

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
                        ]
                    },
                    "name_id_format": [PERSISTENT],
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

    @app.get("/sso/idp-initiated")
    def idp_initiated() -> Response:
        users = json.loads((directory / "users.json").read_text())
        user = users.get(request.args.get("user", ""))
        if user is None:
            abort(404)
        sha1 = request.args.get("alg") == "sha1"
        algorithms: dict[str, str] = (
            {"sign_alg": xmldsig.SIG_RSA_SHA1, "digest_alg": xmldsig.DIGEST_SHA1} if sha1 else {}
        )
        response = server.create_authn_response(
            user["attributes"],
            in_response_to=None,
            destination=acs_url,
            sp_entity_id=sp_entity_id,
            name_id=NameID(format=PERSISTENT, text=user["name_id"]),
            authn={
                "class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
            },
            sign_response=True,
            sign_assertion=True,
            **algorithms,
        )
        info = server.apply_binding(POST, str(response), acs_url, relay_state="", response=True)
        return Response(info["data"], content_type="text/html")

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

    def login(self, user: str, alg: str = "sha256") -> str:
        """The base64 SAML response of an IdP-initiated login of ``user``."""
        url = f"{self.url}/sso/idp-initiated?user={user}&alg={alg}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            return saml_response_from_form(answer.read().decode("utf-8"))

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
    args = parser.parse_args()
    users = args.dir / "users.json"
    if not users.exists():
        users.write_text("{}")
    app = create_app(f"http://127.0.0.1:{args.port}", args.dir, args.sp_entity_id, args.acs)
    app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
