"""AssumeRoleWithSAML with encrypted assertions, as IAM has them: the SAML provider's private
keys (``AddPrivateKey``/``RemovePrivateKey``, at most two) and ``AssertionEncryptionMode``,
set through boto3's IAM client; assertions encrypted by the real pysaml2 IdP (AES-256-CBC,
RSA-OAEP key transport) to the certificate of one key or the other."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.saml_attacks import KeyPair, new_keypair, write_keypair
from tests.support.saml_idp import IdpProcess
from tests.web.conftest import Broker, free_port
from tests.web.test_sts_saml import ATTRIBUTES, code, doc, session_client, unsigned_sts


@dataclass
class Encrypted:
    idp: IdpProcess
    provider_arn: str
    role_arn: str
    first: KeyPair
    second: KeyPair


@pytest.fixture(scope="module")
def encrypted(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Encrypted]:
    directory = tmp_path_factory.mktemp(f"idp-enc-{broker.backend}")
    write_keypair(directory, new_keypair("pysaml2 idp"))
    idp = IdpProcess(directory, free_port())
    try:
        iam = broker.client("iam")
        first = new_keypair("broker decryption key 1")
        provider_arn = iam.create_saml_provider(
            Name=f"encrypting-{broker.backend}",
            SAMLMetadataDocument=idp.metadata(),
            AssertionEncryptionMode="Required",
            AddPrivateKey=first.key_pem,
        )["SAMLProviderArn"]
        role_name = f"saml-encrypted-{broker.backend}"
        trust = {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithSAML",
        }
        role_arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=doc(trust))["Role"][
            "Arn"
        ]
        idp.add_users(
            {
                "erin": {
                    "name_id": "erin-0001",
                    "attributes": {
                        f"{ATTRIBUTES}Role": [f"{role_arn},{provider_arn}"],
                        f"{ATTRIBUTES}RoleSessionName": ["erin"],
                    },
                }
            }
        )
        yield Encrypted(idp, provider_arn, role_arn, first, new_keypair("broker decryption key 2"))
    finally:
        idp.stop()


def _assume(broker: Broker, enc: Encrypted, assertion: str) -> dict[str, Any]:
    result: dict[str, Any] = unsigned_sts(broker.url).assume_role_with_saml(
        RoleArn=enc.role_arn, PrincipalArn=enc.provider_arn, SAMLAssertion=assertion
    )
    return result


def test_encryption_mode_and_key_ids_are_reported_not_the_keys(
    broker: Broker, encrypted: Encrypted
) -> None:
    got = broker.client("iam").get_saml_provider(SAMLProviderArn=encrypted.provider_arn)
    assert got["AssertionEncryptionMode"] == "Required"
    [key] = got["PrivateKeyList"]
    assert len(key["KeyId"]) >= 22 and key["KeyId"].isalnum() and key["KeyId"].isupper()
    text = json.dumps(broker.audit_events())
    body = "".join(encrypted.first.key_pem.strip().splitlines()[1:-1])
    assert body[:60] not in text
    create = [e for e in broker.audit_events() if e["eventName"] == "CreateSAMLProvider"][-1]
    assert create["requestParameters"]["AddPrivateKey"] == "HIDDEN_DUE_TO_SECURITY_REASONS"


def test_an_encrypted_assertion_becomes_role_credentials(
    broker: Broker, encrypted: Encrypted
) -> None:
    response = encrypted.idp.login("erin", encrypt_to=encrypted.first.cert_pem)
    assert b"EncryptedAssertion" in base64.b64decode(response)
    creds = _assume(broker, encrypted, response)["Credentials"]
    me = session_client(broker, creds, "sts").get_caller_identity()
    assert me["Arn"].endswith(":assumed-role/" + encrypted.role_arn.split("/")[-1] + "/erin")


def test_a_plain_assertion_is_refused_where_encryption_is_required(
    broker: Broker, encrypted: Encrypted
) -> None:
    with pytest.raises(ClientError) as info:
        _assume(broker, encrypted, encrypted.idp.login("erin"))
    assert code(info) == "InvalidIdentityToken"
    event = [e for e in broker.audit_events() if e["eventName"] == "AssumeRoleWithSAML"][-1]
    assert "not encrypted" in event["errorMessage"]


def test_an_assertion_encrypted_to_an_unknown_key_is_refused(
    broker: Broker, encrypted: Encrypted
) -> None:
    stranger = new_keypair("not the broker's")
    with pytest.raises(ClientError) as info:
        _assume(broker, encrypted, encrypted.idp.login("erin", encrypt_to=stranger.cert_pem))
    assert code(info) == "InvalidIdentityToken"


def test_two_keys_decrypt_during_a_rotation(broker: Broker, encrypted: Encrypted) -> None:
    iam = broker.client("iam")
    iam.update_saml_provider(
        SAMLProviderArn=encrypted.provider_arn, AddPrivateKey=encrypted.second.key_pem
    )
    keys = iam.get_saml_provider(SAMLProviderArn=encrypted.provider_arn)["PrivateKeyList"]
    assert len(keys) == 2
    for pair in (encrypted.first, encrypted.second):
        _assume(broker, encrypted, encrypted.idp.login("erin", encrypt_to=pair.cert_pem))
    with pytest.raises(ClientError) as info:  # IAM's limit: two keys
        iam.update_saml_provider(
            SAMLProviderArn=encrypted.provider_arn,
            AddPrivateKey=new_keypair("third").key_pem,
        )
    assert code(info) == "InvalidInput"
    old = keys[1]["KeyId"]
    iam.update_saml_provider(SAMLProviderArn=encrypted.provider_arn, RemovePrivateKey=old)
    with pytest.raises(ClientError) as info:
        _assume(broker, encrypted, encrypted.idp.login("erin", encrypt_to=encrypted.first.cert_pem))
    assert code(info) == "InvalidIdentityToken"
    _assume(broker, encrypted, encrypted.idp.login("erin", encrypt_to=encrypted.second.cert_pem))


def test_a_bad_private_key_or_mode_is_refused_and_changes_nothing(
    broker: Broker, encrypted: Encrypted
) -> None:
    iam = broker.client("iam")
    before = iam.get_saml_provider(SAMLProviderArn=encrypted.provider_arn)
    with pytest.raises(ClientError) as info:
        iam.update_saml_provider(
            SAMLProviderArn=encrypted.provider_arn, AddPrivateKey="-----BEGIN nonsense-----"
        )
    assert code(info) == "InvalidInput"
    assert "nonsense" not in str(info.value)
    with pytest.raises(ClientError) as info:
        iam.update_saml_provider(
            SAMLProviderArn=encrypted.provider_arn, AssertionEncryptionMode="Sometimes"
        )
    assert code(info) in ("InvalidInput", "ValidationError")
    after = iam.get_saml_provider(SAMLProviderArn=encrypted.provider_arn)
    assert after["PrivateKeyList"] == before["PrivateKeyList"]
    assert after["AssertionEncryptionMode"] == before["AssertionEncryptionMode"]
