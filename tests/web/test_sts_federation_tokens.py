"""GetFederationToken and GetWebIdentityToken (outbound federation) through boto3."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.web.conftest import Broker
from tests.web.test_sts import code, doc, session


def test_federation_token_is_capped_by_its_session_policy(
    broker: Broker, iam: Any, unique: str
) -> None:
    name = f"feduser-{unique}"
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="p",
        PolicyDocument=doc(
            {
                "Effect": "Allow",
                "Action": ["sts:GetFederationToken", "iam:Get*", "iam:List*"],
                "Resource": "*",
            }
        ),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    sts = broker.client("sts", key["AccessKeyId"], key["SecretAccessKey"])
    only_get_user = doc({"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"})
    result = sts.get_federation_token(Name="app-42", Policy=only_get_user, DurationSeconds=900)
    federated = result["FederatedUser"]
    assert federated["Arn"].endswith(":federated-user/app-42")
    creds = result["Credentials"]
    me = session(broker, creds, "sts").get_caller_identity()
    assert me["Arn"] == federated["Arn"] and me["UserId"] == federated["FederatedUserId"]
    federated_iam = session(broker, creds)
    federated_iam.get_user(UserName=name)
    with pytest.raises(ClientError):
        federated_iam.list_users()  # the user may, the session policy does not allow it
    # Without a session policy the federated user may do nothing.
    bare = sts.get_federation_token(Name="app-43")["Credentials"]
    with pytest.raises(ClientError) as info:
        session(broker, bare).get_user(UserName=name)
    assert code(info) == "AccessDenied"
    # Only IAM users with long-term keys may ask.
    with pytest.raises(ClientError) as info:
        session(broker, creds, "sts").get_federation_token(Name="again")
    assert code(info) == "AccessDenied"


def test_web_identity_token_is_verifiable_through_discovery(
    broker: Broker, iam: Any, unique: str
) -> None:
    sts = broker.client("sts")
    token = sts.get_web_identity_token(
        Audience=["https://partner.example"],
        SigningAlgorithm="ES384",
        DurationSeconds=120,
        Tags=[{"Key": "team", "Value": "red"}],
    )
    with urllib.request.urlopen(broker.url + "/.well-known/openid-configuration") as response:
        discovery = json.load(response)
    assert discovery["issuer"] == broker.url
    with urllib.request.urlopen(discovery["jwks_uri"]) as response:
        keys = KeySet.import_key_set(json.load(response))
    decoded = jwt.decode(token["WebIdentityToken"], keys, algorithms=["ES384", "RS256"])
    claims = decoded.claims
    assert claims["iss"] == broker.url
    assert claims["aud"] == "https://partner.example"
    assert claims["sub"].endswith(":user/admin")
    assert claims["https://aws.amazon.com/tags"] == {"principal_tags": {"team": "red"}}
    assert 100 <= claims["exp"] - claims["iat"] <= 120
    rs = sts.get_web_identity_token(Audience=["a", "b"], SigningAlgorithm="RS256")
    assert jwt.decode(rs["WebIdentityToken"], keys, algorithms=["RS256"]).claims["aud"] == [
        "a",
        "b",
    ]
    # The permission is needed.
    name = f"no-wit-{unique}"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    with pytest.raises(ClientError) as info:
        broker.client("sts", key["AccessKeyId"], key["SecretAccessKey"]).get_web_identity_token(
            Audience=["x"], SigningAlgorithm="RS256"
        )
    assert code(info) == "AccessDenied"
