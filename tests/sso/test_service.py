"""The SSO service layer (fedbroker.sso): a signed-in identity made once from a verified ID
token, the roles on offer, why none is, and issuing role credentials from the identity with the
trust policy evaluated again, audited as the API call.

Real parts: the SQL store (SQLite and PostgreSQL), the IAM operations that create providers and
roles, an OIDC issuer over HTTP whose tokens go through the broker's verifier, the key ring and
session tokens. Nothing is mocked.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from fedbroker.audit.events import MemoryAuditSink
from fedbroker.credentials.session_token import open_session_token
from fedbroker.directory.ids import new_account_id
from fedbroker.directory.model import Account, Kind
from fedbroker.errors import AccessDeniedError, InvalidIdentityTokenError, ValidationError
from fedbroker.federation.oidc import VerifiedToken
from fedbroker.iam.api import RequestMeta, execute
from fedbroker.iam.context import Caller, Services
from fedbroker.sso import (
    FailedCondition,
    SignedIn,
    default_session_name,
    explain_refusals,
    issue_audited,
    offered_roles,
    signed_in_from_oidc,
)
from fedbroker.sts.api import StsContext
from fedbroker.sts.web_identity import provider_lookup
from tests.iam.conftest import T0
from tests.support.oidc_issuer import Issuer
from tests.support.tokens import JwtKey

CLIENT = "sso-service-client"
ACTION = "sts:AssumeRoleWithWebIdentity"
META = RequestMeta("req-sso", "192.0.2.7", "tests", True)


def iam(services: Services, account: Account, action: str, **form: Any) -> dict[str, Any]:
    caller = Caller(account, None, "AKIAEXAMPLEROOTKEY00")
    return execute(services, caller, META, action, {k: str(v) for k, v in form.items()})


def name_of(issuer: Issuer) -> str:
    return issuer.url.split("://", 1)[1]


def register(services: Services, account: Account, issuer: Issuer, **attrs: object) -> str:
    arn = iam(
        services,
        account,
        "CreateOpenIDConnectProvider",
        Url=issuer.url,
        **{"ClientIDList.member.1": CLIENT},
    )["OpenIDConnectProviderArn"]
    if attrs:
        entity = services.store.get_entity(account.id, Kind.OIDC_PROVIDER, name_of(issuer))
        services.store.update_entity(replace(entity, attrs={**entity.attrs, **attrs}))
    return str(arn)


def trust(provider_arn: str, conditions: dict[str, Any], actions: Any = ACTION) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": actions,
                    "Condition": conditions,
                }
            ],
        }
    )


def role(services: Services, account: Account, name: str, policy: str, **extra: Any) -> str:
    made = iam(
        services,
        account,
        "CreateRole",
        RoleName=name,
        AssumeRolePolicyDocument=policy,
        Description=f"the {name} role",
        **extra,
    )
    return str(made["Role"]["Arn"])


def sub_is(issuer: Issuer, subject: str) -> dict[str, Any]:
    return {"StringEquals": {f"{name_of(issuer)}:sub": subject, f"{name_of(issuer)}:aud": CLIENT}}


def verified(
    services: Services, account: Account, issuer: Issuer, key: JwtKey, **claims: Any
) -> VerifiedToken:
    body: dict[str, Any] = {
        "iss": issuer.url,
        "sub": "alice",
        "aud": CLIENT,
        "iat": int(T0.timestamp()) - 5,
        "exp": int(T0.timestamp()) + 300,
        "email": "alice@example.test",
    }
    body.update(claims)
    token = key.sign(body, "RS256")
    ctx = StsContext(services, None, META, T0)
    return services.web_identity.verify(token, provider_lookup(ctx, account.id), T0)


def sign_in(
    services: Services, account: Account, issuer: Issuer, key: JwtKey, **claims: Any
) -> SignedIn:
    found = verified(services, account, issuer, key, **claims)
    ctx = StsContext(services, None, META, T0)
    return signed_in_from_oidc(ctx, found, default_session_name(found.claims, found.subject))


def ctx_of(services: Services) -> StsContext:
    return StsContext(services, None, META, services.clock.now())


def events(services: Services) -> list[Any]:
    assert isinstance(services.audit, MemoryAuditSink)
    return [e for e in services.audit.events if e.event_source == "sts.amazonaws.com"]


# --- the signed-in identity -----------------------------------------------------------------


def test_the_identity_keeps_what_the_token_proved_and_never_the_token(
    services: Services, account: Account, issuer: Issuer, key: JwtKey
) -> None:
    provider = register(services, account, issuer)
    found = verified(services, account, issuer, key)
    who = signed_in_from_oidc(ctx_of(services), found, "alice@example.test")
    name = name_of(issuer)
    assert (who.kind, who.account_id, who.provider_arn) == ("oidc", account.id, provider)
    assert (who.provider_name, who.subject, who.session_name) == (name, "alice", who.session_name)
    assert who.trust_context[f"{name}:sub"] == "alice"
    assert who.trust_context[f"{name}:aud"] == CLIENT
    assert who.trust_context["aws:FederatedProvider"] == provider
    # Per-request keys are not part of the sign-in: each issue adds its own.
    assert not {"aws:SourceIp", "aws:CurrentTime", "sts:RoleSessionName"} & set(who.trust_context)
    assert who.display == {"email": "alice@example.test"}
    assert who.authenticated_at == T0

    text = who.to_json()
    assert SignedIn.from_json(text) == who
    signature = key.sign({"x": 1}, "RS256").rsplit(".", 1)[1]
    assert signature not in text and "eyJ" not in text

    # A SAML sign-in keeps what single logout needs: the NameID as sent and the SessionIndex.
    saml = replace(
        who,
        kind="saml",
        name_id_format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        name_qualifier="https://idp.example.test",
        sp_name_qualifier="https://broker.example.test/sso/saml/corp/metadata",
        session_index="_session-1",
    )
    assert SignedIn.from_json(saml.to_json()) == saml
    assert SignedIn.from_json(text).session_index is None


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '{"kind": "ldap"}',
        '{"kind": "oidc", "account_id": 5}',
        '{"kind": "saml", "session_index": 5}',
        "not json",
    ],
)
def test_a_damaged_identity_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        SignedIn.from_json(text)


def test_default_session_name_is_the_email_or_a_safe_subject() -> None:
    assert default_session_name({"email": "a@b.test"}, "x") == "a@b.test"
    assert default_session_name({"email": "not valid!"}, "repo:o/r") == "repo-o-r"
    assert default_session_name({}, "x") == "x--"


# --- roles on offer and refusals --------------------------------------------------------------


def test_offered_roles_are_those_whose_trust_allows_this_sign_in(
    services: Services, issuer: Issuer, key: JwtKey
) -> None:
    account = Account(new_account_id(), "sso-tests", "root@example.com", "$scrypt$x", T0)
    services.store.create_account(account)
    provider = register(services, account, issuer)
    admin = role(services, account, "Admin", trust(provider, sub_is(issuer, "alice")))
    role(
        services,
        account,
        "Reader",
        trust(provider, sub_is(issuer, "alice")),
        MaxSessionDuration=7200,
    )
    role(services, account, "Bobs", trust(provider, sub_is(issuer, "bob")))
    role(
        services,
        account,
        "Service",
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "ec2.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    who = sign_in(services, account, issuer, key)
    offered = offered_roles(ctx_of(services), who)
    assert [(r.name, r.max_session_duration) for r in offered] == [
        ("Admin", 3600),
        ("Reader", 7200),
    ]
    first = offered[0]
    assert (first.arn, first.account_id, first.account_alias) == (admin, account.id, "sso-tests")
    assert first.description == "the Admin role"

    # A SAML-style Role attribute restricts the offer further.
    assert [
        r.name for r in offered_roles(ctx_of(services), replace(who, allowed_roles=(admin,)))
    ] == ["Admin"]


def test_refusals_name_failed_conditions_with_your_value_only(
    services: Services, account: Account, issuer: Issuer, key: JwtKey
) -> None:
    provider = register(services, account, issuer)
    role(services, account, "Bobs", trust(provider, sub_is(issuer, "bob-the-secret-expected")))
    role(
        services,
        account,
        "SamlOnly",
        trust(provider, {}, "sts:AssumeRoleWithSAML").replace(',"Condition": {}', ""),
    )
    role(
        services,
        account,
        "OtherProvider",
        trust("arn:aws:iam::123456789012:oidc-provider/elsewhere.example", {}).replace(
            ', "Condition": {}', ""
        ),
    )
    who = sign_in(services, account, issuer, key)
    assert offered_roles(ctx_of(services), who) == []
    refusals = {r.role_name: r for r in explain_refusals(ctx_of(services), who)}
    assert set(refusals) == {"Bobs", "SamlOnly"}  # never a role that does not name the provider
    bobs = refusals["Bobs"]
    assert bobs.conditions == (FailedCondition("StringEquals", f"{name_of(issuer)}:sub", "alice"),)
    assert "did not hold" in bobs.reason
    assert "bob-the-secret-expected" not in repr(refusals)
    assert refusals["SamlOnly"].conditions == ()
    assert "does not allow sts:AssumeRoleWithWebIdentity" in refusals["SamlOnly"].reason


# --- issuing ----------------------------------------------------------------------------------


def test_issue_mints_the_api_calls_credentials_and_audits_one_event(
    services: Services, account: Account, issuer: Issuer, key: JwtKey
) -> None:
    provider = register(services, account, issuer)
    arn = role(services, account, "Admin", trust(provider, sub_is(issuer, "alice")))
    who = sign_in(services, account, issuer, key)
    issued = issue_audited(services, META, who, arn, None, "broker-session")

    assert (
        issued.assumed_role_arn
        == f"arn:aws:sts::{account.id}:assumed-role/Admin/{who.session_name}"
    )
    assert issued.expiration == T0 + timedelta(hours=1)
    assert services.keyring is not None
    claims = open_session_token(
        services.keyring,
        issued.credentials.session_token,
        issued.credentials.access_key_id,
        T0,
    )
    assert (claims.role_arn, claims.provider, claims.subject) == (arn, provider, "alice")

    [event] = events(services)
    record = event.to_record()
    assert record["eventName"] == "AssumeRoleWithWebIdentity"
    assert record["additionalEventData"] == {"via": "broker-session"}
    assert record["userIdentity"]["type"] == "WebIdentityUser"
    assert record["requestParameters"] == {"RoleArn": arn, "RoleSessionName": who.session_name}
    assert record["responseElements"]["assumedRoleUser"]["arn"] == issued.assumed_role_arn
    assert issued.credentials.secret_access_key not in json.dumps(record)
    assert issued.credentials.session_token not in json.dumps(record)


def test_issue_evaluates_the_trust_policy_again(
    services: Services, account: Account, issuer: Issuer, key: JwtKey
) -> None:
    provider = register(services, account, issuer)
    arn = role(services, account, "Admin", trust(provider, sub_is(issuer, "alice")))
    who = sign_in(services, account, issuer, key)
    iam(
        services,
        account,
        "UpdateAssumeRolePolicy",
        RoleName="Admin",
        PolicyDocument=trust(provider, sub_is(issuer, "somebody-else")),
    )
    with pytest.raises(AccessDeniedError) as caught:
        issue_audited(services, META, who, arn, None, "cli-session")
    assert caught.value.audited
    [event] = events(services)
    record = event.to_record()
    assert record["errorCode"] == "AccessDenied"
    assert record["additionalEventData"] == {"via": "cli-session"}
    assert record["responseElements"] is None


def test_durations_default_to_an_hour_and_stop_at_the_roles_maximum(
    services: Services, account: Account, issuer: Issuer, key: JwtKey
) -> None:
    provider = register(services, account, issuer)
    arn = role(services, account, "Short", trust(provider, sub_is(issuer, "alice")))
    who = sign_in(services, account, issuer, key)
    assert issue_audited(services, META, who, arn, 1800, "broker-session").expiration == (
        T0 + timedelta(seconds=1800)
    )
    with pytest.raises(ValidationError) as too_long:
        issue_audited(services, META, who, arn, 3601, "broker-session")
    assert "MaxSessionDuration set for this role (3600 seconds)" in too_long.value.message
    with pytest.raises(ValidationError) as too_short:
        issue_audited(services, META, who, arn, 899, "broker-session")
    assert "900" in too_short.value.message
    assert [e.error_code for e in events(services)] == [None, "ValidationError", "ValidationError"]


def test_a_role_outside_the_allowed_list_or_account_is_refused(
    services: Services, account: Account, issuer: Issuer, key: JwtKey
) -> None:
    provider = register(services, account, issuer)
    first = role(services, account, "First", trust(provider, sub_is(issuer, "alice")))
    second = role(services, account, "Second", trust(provider, sub_is(issuer, "alice")))
    who = replace(sign_in(services, account, issuer, key), allowed_roles=(first,))
    issue_audited(services, META, who, first, None, "broker-session")
    with pytest.raises(AccessDeniedError):
        issue_audited(services, META, who, second, None, "broker-session")
    with pytest.raises(AccessDeniedError):
        issue_audited(
            services, META, who, "arn:aws:iam::123456789012:role/First", None, "broker-session"
        )


def test_a_sign_ins_session_end_caps_every_issue(
    services: Services, account: Account, issuer: Issuer, key: JwtKey
) -> None:
    provider = register(services, account, issuer)
    arn = role(services, account, "Admin", trust(provider, sub_is(issuer, "alice")))
    who = sign_in(services, account, issuer, key)
    capped = replace(who, session_ends_by=T0 + timedelta(minutes=20))
    assert issue_audited(services, META, capped, arn, None, "broker-session").expiration == (
        T0 + timedelta(minutes=20)
    )
    with pytest.raises(AccessDeniedError):
        issue_audited(services, META, replace(who, session_ends_by=T0), arn, None, "broker-session")


# --- claims to session tags and source identity -----------------------------------------------


def test_claim_mapping_makes_tags_and_source_identity_that_trust_must_allow(
    services: Services, account: Account, issuer: Issuer, key: JwtKey
) -> None:
    provider = register(
        services,
        account,
        issuer,
        sso_claims={"source_identity": "email", "tags": {"groups": "Groups", "dept": "Dept"}},
    )
    role(services, account, "Plain", trust(provider, sub_is(issuer, "alice")))
    tagged = role(
        services,
        account,
        "Tagged",
        trust(
            provider,
            sub_is(issuer, "alice"),
            [ACTION, "sts:TagSession", "sts:SetSourceIdentity"],
        ),
    )
    who = sign_in(services, account, issuer, key, groups=["admins", "ops"])
    assert who.source_identity == "alice@example.test"
    assert who.tags == {"Groups": "admins:ops"}  # no `dept` claim: no tag

    # Without sts:TagSession / sts:SetSourceIdentity in its trust policy, a role is not offered,
    # and the refusal says which action is missing.
    assert [r.name for r in offered_roles(ctx_of(services), who)] == ["Tagged"]
    [plain] = explain_refusals(ctx_of(services), who)
    assert "sts:TagSession" in plain.reason

    issued = issue_audited(services, META, who, tagged, None, "broker-session")
    assert services.keyring is not None
    claims = open_session_token(
        services.keyring, issued.credentials.session_token, issued.credentials.access_key_id, T0
    )
    assert claims.source_identity == "alice@example.test"
    assert dict(claims.tags) == {"Groups": "admins:ops"}


def test_a_claim_the_session_cannot_carry_refuses_the_sign_in(
    services: Services, account: Account, issuer: Issuer, key: JwtKey
) -> None:
    register(services, account, issuer, sso_claims={"source_identity": "name"})
    with pytest.raises(InvalidIdentityTokenError) as caught:
        sign_in(services, account, issuer, key, name="Alice Liddell (not a source identity)")
    assert "source identity" in str(caught.value.detail)
