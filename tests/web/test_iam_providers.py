"""OIDC and SAML identity providers through the IAM API: unmodified boto3 against
`fedbroker serve`, on SQLite and on PostgreSQL.

Every refused request is checked to have stored nothing. Requests that botocore would refuse
before sending (too short, by its own copy of IAM's constraints) are sent with parameter
validation off, so that the broker's own checks are what is tested.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.saml_metadata import BROKEN, certificate, certificate_base64, idp_metadata
from tests.web.conftest import Broker

THUMB_A = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"
THUMB_B = "990F4193972F2BECF12DDEDA5237F9C952F20D9E"


def code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def message(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Message"])


def unvalidated(broker: Broker) -> Any:
    """A client that sends what it is given: botocore's own input checks are off."""
    return boto3.client(
        "iam",
        endpoint_url=broker.url,
        region_name="us-east-1",
        aws_access_key_id=broker.admin_key_id,
        aws_secret_access_key=broker.admin_secret,
        config=Config(retries={"max_attempts": 1}, parameter_validation=False),
    )


def oidc_arns(iam: Any) -> list[str]:
    return [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]


def saml_arns(iam: Any) -> list[str]:
    return [p["Arn"] for p in iam.list_saml_providers()["SAMLProviderList"]]


def account_of(iam: Any) -> str:
    return str(iam.get_user()["User"]["Arn"].split(":")[4])


# --- OpenID Connect ---------------------------------------------------------------------------


def test_oidc_provider_lifecycle(iam: Any, broker: Broker, unique: str) -> None:
    url = f"https://Token.{unique}.Example.com/tenant/A1"
    created = iam.create_open_id_connect_provider(
        Url=url,
        ClientIDList=["sts.amazonaws.com", "app-1", "app-1"],
        ThumbprintList=[THUMB_A],
        Tags=[{"Key": "team", "Value": "platform"}],
    )
    arn = created["OpenIDConnectProviderArn"]
    # The host is lower-cased, the path kept; the scheme is not part of the name.
    name = f"token.{unique}.example.com/tenant/A1"
    assert arn == f"arn:aws:iam::{account_of(iam)}:oidc-provider/{name}"
    assert created["Tags"] == [{"Key": "team", "Value": "platform"}]
    got = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert got["Url"] == name
    assert got["ClientIDList"] == ["sts.amazonaws.com", "app-1"]
    assert got["ThumbprintList"] == [THUMB_A]
    assert got["CreateDate"].tzinfo is not None
    assert got["Tags"] == [{"Key": "team", "Value": "platform"}]
    assert arn in oidc_arns(iam)

    # One provider per URL; the host is compared without regard to case.
    with pytest.raises(ClientError) as info:
        iam.create_open_id_connect_provider(Url=f"https://TOKEN.{unique}.example.com/tenant/A1")
    assert code(info) == "EntityAlreadyExists"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409

    # Client ids: adding one that is there, or removing one that is not, is no error.
    iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="app-2")
    iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="app-2")
    iam.remove_client_id_from_open_id_connect_provider(
        OpenIDConnectProviderArn=arn, ClientID="sts.amazonaws.com"
    )
    iam.remove_client_id_from_open_id_connect_provider(
        OpenIDConnectProviderArn=arn, ClientID="never-added"
    )
    got = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert got["ClientIDList"] == ["app-1", "app-2"]

    # Thumbprints are replaced as a whole, and may be emptied.
    iam.update_open_id_connect_provider_thumbprint(
        OpenIDConnectProviderArn=arn, ThumbprintList=[THUMB_B, THUMB_A]
    )
    got = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert got["ThumbprintList"] == [THUMB_B, THUMB_A]
    iam.update_open_id_connect_provider_thumbprint(OpenIDConnectProviderArn=arn, ThumbprintList=[])
    got = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert got.get("ThumbprintList", []) == []

    # Tags.
    iam.tag_open_id_connect_provider(
        OpenIDConnectProviderArn=arn,
        Tags=[{"Key": "Team", "Value": "red"}, {"Key": "env", "Value": "prod"}],
    )
    iam.untag_open_id_connect_provider(OpenIDConnectProviderArn=arn, TagKeys=["ENV"])
    tags = iam.list_open_id_connect_provider_tags(OpenIDConnectProviderArn=arn)["Tags"]
    assert tags == [{"Key": "Team", "Value": "red"}]

    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert arn not in oidc_arns(iam)
    with pytest.raises(ClientError) as info:
        iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert code(info) == "NoSuchEntity"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # Deleting is idempotent, as IAM documents it; other calls on a missing provider are not.
    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    with pytest.raises(ClientError) as info:
        iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="x")
    assert code(info) == "NoSuchEntity"

    events = [e for e in broker.audit_events() if e["eventName"] == "CreateOpenIDConnectProvider"]
    assert any(e["responseElements"] == {"openIDConnectProviderArn": arn} for e in events)


def providers_counted(iam: Any) -> int:
    return int(iam.get_account_summary()["SummaryMap"]["Providers"])


def test_oidc_provider_without_client_ids_or_thumbprints(iam: Any, unique: str) -> None:
    counted = providers_counted(iam)
    arn = iam.create_open_id_connect_provider(Url=f"https://bare-{unique}.example.com")[
        "OpenIDConnectProviderArn"
    ]
    assert providers_counted(iam) == counted + 1  # GetAccountSummary counts OIDC and SAML
    got = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert got["Url"] == f"bare-{unique}.example.com"
    assert got.get("ClientIDList", []) == [] and got.get("ThumbprintList", []) == []
    assert "Tags" not in got
    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("http://127.0.0.1:{port}", "127.0.0.1:{port}"),
        ("http://127.8.9.10:{port}/realms/{unique}", "127.8.9.10:{port}/realms/{unique}"),
        ("HTTP://LocalHost:{port}/{unique}", "localhost:{port}/{unique}"),
        ("http://[::1]:{port}/{unique}", "[::1]:{port}/{unique}"),
    ],
)
def test_http_is_accepted_for_loopback_addresses(
    iam: Any, unique: str, url: str, name: str
) -> None:
    port = str(20000 + int(unique[:4], 16) % 40000)
    arn = iam.create_open_id_connect_provider(
        Url=url.format(port=port, unique=unique), ClientIDList=["local"]
    )["OpenIDConnectProviderArn"]
    expected = name.format(port=port, unique=unique)
    assert arn.endswith(f":oidc-provider/{expected}")
    assert iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)["Url"] == expected
    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert arn not in oidc_arns(iam)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # Only https, or http to a loopback address.
        ({"Url": "http://idp-{u}.example.com"}, "InvalidInput"),
        ({"Url": "http://10.0.0.1/{u}"}, "InvalidInput"),
        ({"Url": "http://127.0.0.1.{u}.example.com"}, "InvalidInput"),
        ({"Url": "http://localhost.{u}.example.com"}, "InvalidInput"),
        ({"Url": "ftp://idp-{u}.example.com"}, "InvalidInput"),
        ({"Url": "idp-{u}.example.com"}, "InvalidInput"),
        # A host and a path only.
        ({"Url": "https://idp-{u}.example.com/?tenant=1"}, "InvalidInput"),
        ({"Url": "https://idp-{u}.example.com/#top"}, "InvalidInput"),
        ({"Url": "https://admin:secret@idp-{u}.example.com"}, "InvalidInput"),
        ({"Url": "https://"}, "InvalidInput"),
        ({"Url": "https://idp_{u}.example.com"}, "InvalidInput"),
        ({"Url": "https://idp-{u}.example.com/~user"}, "InvalidInput"),
        ({"Url": "https://idp-{u}.example .com"}, "InvalidInput"),
        ({"Url": "https://idp-{u}.example.com:99999"}, "InvalidInput"),
        ({"Url": "https://idp-{u}.example.com/" + "p" * 240}, "ValidationError"),
        # Client ids: at most 100, each 1 to 255 characters.
        (
            {"Url": "https://idp-{u}.example.com", "ClientIDList": [f"c{i}" for i in range(101)]},
            "LimitExceeded",
        ),
        ({"Url": "https://idp-{u}.example.com", "ClientIDList": ["c" * 256]}, "ValidationError"),
        ({"Url": "https://idp-{u}.example.com", "ClientIDList": [""]}, "ValidationError"),
        # Thumbprints: at most 5, each 40 hexadecimal characters.
        (
            {
                "Url": "https://idp-{u}.example.com",
                "ThumbprintList": [f"{i:040x}" for i in range(6)],
            },
            "LimitExceeded",
        ),
        ({"Url": "https://idp-{u}.example.com", "ThumbprintList": ["a" * 39]}, "ValidationError"),
        ({"Url": "https://idp-{u}.example.com", "ThumbprintList": ["g" * 40]}, "InvalidInput"),
        # Tags, as everywhere in IAM.
        (
            {"Url": "https://idp-{u}.example.com", "Tags": [{"Key": "aws:x", "Value": "y"}]},
            "ValidationError",
        ),
    ],
)
def test_create_oidc_provider_refuses_bad_input_and_stores_nothing(
    iam: Any, broker: Broker, unique: str, kwargs: dict[str, Any], expected: str
) -> None:
    before = oidc_arns(iam)
    sent = {**kwargs, "Url": kwargs["Url"].replace("{u}", unique)}
    with pytest.raises(ClientError) as info:
        unvalidated(broker).create_open_id_connect_provider(**sent)
    assert code(info) == expected, message(info)
    assert oidc_arns(iam) == before


def test_oidc_provider_updates_are_checked(iam: Any, broker: Broker, unique: str) -> None:
    arn = iam.create_open_id_connect_provider(
        Url=f"https://limits-{unique}.example.com",
        ClientIDList=[f"c{i}" for i in range(100)],
        ThumbprintList=[THUMB_A],
    )["OpenIDConnectProviderArn"]
    with pytest.raises(ClientError) as info:
        iam.add_client_id_to_open_id_connect_provider(
            OpenIDConnectProviderArn=arn, ClientID="one-more"
        )
    assert code(info) == "LimitExceeded"
    raw = unvalidated(broker)
    for thumbprints, expected in (
        (["z" * 40], "InvalidInput"),
        (["a" * 41], "ValidationError"),
        ([f"{i:040x}" for i in range(6)], "LimitExceeded"),
    ):
        with pytest.raises(ClientError) as info:
            raw.update_open_id_connect_provider_thumbprint(
                OpenIDConnectProviderArn=arn, ThumbprintList=thumbprints
            )
        assert code(info) == expected
    with pytest.raises(ClientError) as info:
        raw.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="")
    assert code(info) == "ValidationError"
    got = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert len(got["ClientIDList"]) == 100 and got["ThumbprintList"] == [THUMB_A]
    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)


def test_provider_arns_are_checked(iam: Any, unique: str) -> None:
    account = account_of(iam)
    other = "123456789012" if account != "123456789012" else "210987654321"
    for arn, expected in (
        (f"arn:aws:iam::{account}:saml-provider/x-{unique}", "InvalidInput"),
        (f"arn:aws:iam::{account}:role/x-{unique}", "InvalidInput"),
        (f"not-an-arn-at-all-{unique}", "InvalidInput"),
        (f"arn:aws:iam::{account}:oidc-provider/missing-{unique}.example.com", "NoSuchEntity"),
        (f"arn:aws:iam::{other}:oidc-provider/x-{unique}.example.com", "NoSuchEntity"),
    ):
        with pytest.raises(ClientError) as info:
            iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
        assert code(info) == expected, arn
    with pytest.raises(ClientError) as info:
        iam.get_saml_provider(SAMLProviderArn=f"arn:aws:iam::{account}:oidc-provider/x.example.com")
    assert code(info) == "InvalidInput"


def test_provider_calls_are_authorized_on_the_provider_arn(
    iam: Any, broker: Broker, unique: str
) -> None:
    allowed = f"allowed-{unique}.example.com"
    user = f"idp-admin-{unique}"
    iam.create_user(UserName=user)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iam:*OpenIDConnectProvider*", "iam:*SAMLProvider*"],
                "Resource": [
                    f"arn:aws:iam::*:oidc-provider/{allowed}",
                    f"arn:aws:iam::*:saml-provider/allowed-{unique}",
                ],
            },
            {
                "Effect": "Allow",
                "Action": ["iam:ListOpenIDConnectProviders", "iam:ListSAMLProviders"],
                "Resource": "*",
            },
        ],
    }
    iam.put_user_policy(UserName=user, PolicyName="idp", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    client = broker.client("iam", key["AccessKeyId"], key["SecretAccessKey"])
    arn = client.create_open_id_connect_provider(Url=f"https://{allowed}")[
        "OpenIDConnectProviderArn"
    ]
    client.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    client.list_open_id_connect_providers()
    before = oidc_arns(iam)
    with pytest.raises(ClientError) as info:
        client.create_open_id_connect_provider(Url=f"https://other-{unique}.example.com")
    assert code(info) == "AccessDenied"
    assert f"oidc-provider/other-{unique}.example.com" in message(info)
    assert oidc_arns(iam) == before
    saml = client.create_saml_provider(
        Name=f"allowed-{unique}", SAMLMetadataDocument=idp_metadata()
    )
    with pytest.raises(ClientError) as info:
        client.create_saml_provider(Name=f"other-{unique}", SAMLMetadataDocument=idp_metadata())
    assert code(info) == "AccessDenied"
    client.delete_saml_provider(SAMLProviderArn=saml["SAMLProviderArn"])
    client.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)


# --- SAML -------------------------------------------------------------------------------------


def test_saml_provider_lifecycle(iam: Any, broker: Broker, unique: str) -> None:
    name = f"Corp-{unique}.idp_1"
    document = idp_metadata()
    created = iam.create_saml_provider(
        Name=name, SAMLMetadataDocument=document, Tags=[{"Key": "owner", "Value": "it"}]
    )
    arn = created["SAMLProviderArn"]
    assert arn == f"arn:aws:iam::{account_of(iam)}:saml-provider/{name}"
    assert created["Tags"] == [{"Key": "owner", "Value": "it"}]
    got = iam.get_saml_provider(SAMLProviderArn=arn)
    assert got["SAMLMetadataDocument"] == document
    assert got["Tags"] == [{"Key": "owner", "Value": "it"}]
    # Without a validUntil in the metadata, IAM's default: 100 years after it was stored.
    created_at = got["CreateDate"]
    assert got["ValidUntil"] == created_at.replace(year=created_at.year + 100)
    listed = [p for p in iam.list_saml_providers()["SAMLProviderList"] if p["Arn"] == arn]
    assert listed == [{"Arn": arn, "ValidUntil": got["ValidUntil"], "CreateDate": created_at}]

    with pytest.raises(ClientError) as info:
        iam.create_saml_provider(Name=name.upper(), SAMLMetadataDocument=document)
    assert code(info) == "EntityAlreadyExists"

    # Update: a new document, here with its own validUntil (any zone; stored in UTC).
    updated = idp_metadata(
        entity_id="https://idp.example.test/v2", valid_until="2099-06-30T23:00:00-02:00"
    )
    response = iam.update_saml_provider(SAMLProviderArn=arn, SAMLMetadataDocument=updated)
    assert response["SAMLProviderArn"] == arn
    got = iam.get_saml_provider(SAMLProviderArn=arn)
    assert got["SAMLMetadataDocument"] == updated
    assert got["ValidUntil"].astimezone(UTC).isoformat() == "2099-07-01T01:00:00+00:00"
    assert got["CreateDate"] == created_at

    iam.tag_saml_provider(SAMLProviderArn=arn, Tags=[{"Key": "tier", "Value": "1"}])
    iam.untag_saml_provider(SAMLProviderArn=arn, TagKeys=["OWNER"])
    assert iam.list_saml_provider_tags(SAMLProviderArn=arn)["Tags"] == [
        {"Key": "tier", "Value": "1"}
    ]

    iam.delete_saml_provider(SAMLProviderArn=arn)
    assert arn not in saml_arns(iam)
    for call in (iam.get_saml_provider, iam.delete_saml_provider):
        with pytest.raises(ClientError) as info:
            call(SAMLProviderArn=arn)
        assert code(info) == "NoSuchEntity"


@pytest.mark.parametrize("variant", sorted(BROKEN))
def test_unusable_metadata_is_invalid_input_and_stores_nothing(
    iam: Any, unique: str, variant: str
) -> None:
    document, expected = BROKEN[variant]
    before = saml_arns(iam)
    with pytest.raises(ClientError) as info:
        iam.create_saml_provider(Name=f"broken-{unique}", SAMLMetadataDocument=document)
    assert code(info) == "InvalidInput"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert expected in message(info)
    assert saml_arns(iam) == before


def test_entity_attacks_are_refused_without_expanding_anything(iam: Any, unique: str) -> None:
    for variant in ("XXE", "billion laughs"):
        document, _ = BROKEN[variant]
        with pytest.raises(ClientError) as info:
            iam.create_saml_provider(Name=f"attack-{unique}", SAMLMetadataDocument=document)
        assert code(info) == "InvalidInput"
        assert "root:" not in message(info) and "lollol" not in message(info)
    assert not [a for a in saml_arns(iam) if a.endswith(f"/attack-{unique}")]


def test_an_update_with_unusable_metadata_changes_nothing(iam: Any, unique: str) -> None:
    document = idp_metadata()
    arn = iam.create_saml_provider(Name=f"keep-{unique}", SAMLMetadataDocument=document)[
        "SAMLProviderArn"
    ]
    before = iam.get_saml_provider(SAMLProviderArn=arn)
    for variant in ("no certificate", "expired validUntil", "XXE"):
        with pytest.raises(ClientError) as info:
            iam.update_saml_provider(SAMLProviderArn=arn, SAMLMetadataDocument=BROKEN[variant][0])
        assert code(info) == "InvalidInput"
    after = iam.get_saml_provider(SAMLProviderArn=arn)
    assert after["SAMLMetadataDocument"] == document
    assert after["ValidUntil"] == before["ValidUntil"]
    iam.delete_saml_provider(SAMLProviderArn=arn)


def test_metadata_variants_that_are_accepted(iam: Any, unique: str) -> None:
    """An EntitiesDescriptor around one IdP, a KeyDescriptor without `use`, two certificates."""
    other = certificate_base64(certificate("rollover.example.test"))
    for index, document in enumerate(
        (
            idp_metadata(in_entities=True, valid_until="2098-01-01T00:00:00Z"),
            idp_metadata(key_use=None, certificates=[certificate_base64(), other]),
        )
    ):
        arn = iam.create_saml_provider(Name=f"ok{index}-{unique}", SAMLMetadataDocument=document)[
            "SAMLProviderArn"
        ]
        iam.delete_saml_provider(SAMLProviderArn=arn)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"Name": "bad name!"}, "ValidationError"),
        ({"Name": "n" * 129}, "ValidationError"),
        ({"Name": ""}, "ValidationError"),
        ({"SAMLMetadataDocument": "<x/>" * 10}, "ValidationError"),  # under 1000 characters
        ({"Tags": [{"Key": "aws:reserved", "Value": "x"}]}, "ValidationError"),
    ],
)
def test_create_saml_provider_checks_its_parameters(
    iam: Any, broker: Broker, unique: str, kwargs: dict[str, Any], expected: str
) -> None:
    before = saml_arns(iam)
    sent = {"Name": f"params-{unique}", "SAMLMetadataDocument": idp_metadata(), **kwargs}
    with pytest.raises(ClientError) as info:
        unvalidated(broker).create_saml_provider(**sent)
    assert code(info) == expected
    assert saml_arns(iam) == before


def test_a_document_over_the_request_size_limit_is_refused(iam: Any, unique: str) -> None:
    """The broker reads at most `max_body_bytes` (1 MiB by default) of a request; IAM's own
    10,000,000-character limit on the document is checked by the parser's tests."""
    document = idp_metadata(padding=2_000_000)
    with pytest.raises(ClientError) as info:
        iam.create_saml_provider(Name=f"huge-{unique}", SAMLMetadataDocument=document)
    assert code(info) == "RequestEntityTooLarge"
    assert not [a for a in saml_arns(iam) if a.endswith(f"/huge-{unique}")]
