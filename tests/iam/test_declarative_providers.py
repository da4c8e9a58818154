"""Identity providers in the directory file: reading ``providers:`` (every problem located),
planning and applying them through the IAM operations, ``--prune``, and export.

Runs against the SQL store on SQLite and on PostgreSQL, like tests/iam/test_declarative.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fedbroker.directory.model import Account, Kind
from fedbroker.directory.store import Store
from fedbroker.errors import FedbrokerError
from fedbroker.federation.saml_metadata import IdpMetadata
from fedbroker.iam import declarative
from fedbroker.iam.context import Services
from fedbroker.iam.declarative import DesiredState
from tests.iam.conftest import T0
from tests.iam.test_declarative import apply, base_file, entity, iam, plan, problems
from tests.support.saml_metadata import BROKEN, idp_metadata

THUMB = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"
OTHER_THUMB = "990F4193972F2BECF12DDEDA5237F9C952F20D9E"
METADATA = idp_metadata()
METADATA_V2 = idp_metadata(entity_id="https://idp.example.test/v2")


def with_providers(**section: Any) -> dict[str, Any]:
    return {"version": 1, "providers": section}


def github(**extra: Any) -> dict[str, Any]:
    return {
        "url": "https://Token.Actions.GithubUserContent.com",
        "client_ids": ["sts.amazonaws.com"],
        "thumbprints": [THUMB],
        "tags": {"team": "ci"},
        **extra,
    }


def corporate(**extra: Any) -> dict[str, Any]:
    return {"name": "corporate", "metadata": METADATA, "tags": {"owner": "it"}, **extra}


# --- loading ---------------------------------------------------------------------------------


def test_providers_are_read_into_the_desired_state() -> None:
    desired = declarative.load_data(with_providers(oidc=[github()], saml=[corporate()]))
    [provider] = desired.oidc_providers
    assert provider.url == "https://token.actions.githubusercontent.com"
    assert provider.name == "token.actions.githubusercontent.com"
    assert provider.client_ids == ("sts.amazonaws.com",)
    assert provider.thumbprints == (THUMB,)
    assert provider.where == "providers.oidc[0]"
    [saml] = desired.saml_providers
    assert (saml.name, saml.metadata, dict(saml.tags)) == ("corporate", METADATA, {"owner": "it"})
    assert desired.providers_listed


def test_every_provider_problem_is_reported_with_its_location(tmp_path: Path) -> None:
    data = with_providers(
        oidc=[
            {"url": "http://idp.example.com", "client_ids": ["a", "a"], "thumbprints": ["xyz"]},
            {"url": "https://Idp.example.com", "client_id": []},
            {"url": "https://IDP.example.com/"},
            {"url": "https://idp.example.com/"},
            {"client_ids": ["x"]},
            {"url": "https://many.example.com", "thumbprints": [f"{i:040x}" for i in range(6)]},
        ],
        saml=[
            {"name": "bad name", "metadata": BROKEN["no certificate"][0]},
            {"name": "both", "metadata": METADATA, "metadata_file": "idp.xml"},
            {"name": "neither"},
            {"name": "unreadable", "metadata_file": "missing.xml"},
            {"name": "expired", "metadata": BROKEN["expired validUntil"][0]},
            {"name": "short", "metadata": "<x/>"},
            {"name": "attack", "metadata": BROKEN["XXE"][0]},
            {"name": "Expired", "metadata": METADATA},
        ],
    )
    found = problems(lambda: declarative.load_data(data, base_dir=tmp_path, now=T0))
    expected = [
        "providers.oidc[0].url: the URL `http://idp.example.com` must begin with https://",
        "providers.oidc[0].client_ids[1]: client id `a` is listed twice",
        "providers.oidc[0].thumbprints: thumbprint `xyz` must be 40 characters long",
        "providers.oidc[1].client_id: unknown field; did you mean `client_ids`?",
        "providers.oidc[4].url: required",
        "providers.oidc[5].thumbprints: cannot exceed quota for ThumbprintsPerOpenIdConnect",
        "providers.saml[0].name: `bad name` is not a valid SAML provider name",
        "providers.saml[0].metadata: the IDPSSODescriptor has no signing certificate",
        "providers.saml[1]: give `metadata` or `metadata_file`, not both",
        "providers.saml[2].metadata: required: `metadata` or `metadata_file`",
        f"providers.saml[3].metadata_file: cannot read `{tmp_path / 'missing.xml'}`",
        "providers.saml[4].metadata: the metadata expired at 2001-01-01T00:00:00Z",
        "providers.saml[5].metadata: must be 1000 to 10000000 characters long",
        "providers.saml[6].metadata: the metadata document has a document type declaration",
        "providers.oidc[3].url: OIDC provider `idp.example.com/` is also defined at "
        "providers.oidc[2]",
        # `expired` was not read (its metadata is refused), so `Expired` is not a repeat.
    ]
    for prefix in expected:
        assert any(p.startswith(prefix) for p in found), (prefix, found)
    assert len(found) == len(expected), found


def test_the_providers_section_is_a_mapping_of_two_lists() -> None:
    assert declarative.load_data({"version": 1, "providers": []}) == DesiredState(
        providers_listed=True
    )
    assert declarative.load_data(with_providers()) == DesiredState(providers_listed=True)
    assert problems(lambda: declarative.load_data({"version": 1, "providers": [{"x": 1}]})) == [
        "providers: must be a mapping with `oidc` and `saml` lists"
    ]
    assert problems(lambda: declarative.load_data(with_providers(oidc={}, sam=[]))) == [
        "providers.sam: unknown field; did you mean `saml`?",
        "providers.oidc: must be a list",
    ]
    twice = with_providers(saml=[corporate(), corporate(name="CORPORATE")])
    assert problems(lambda: declarative.load_data(twice)) == [
        "providers.saml[1].name: SAML provider `CORPORATE` is also defined at providers.saml[0] "
        "(names ignore case)"
    ]


def test_metadata_files_are_read_relative_to_the_directory_file(tmp_path: Path) -> None:
    (tmp_path / "idp").mkdir()
    (tmp_path / "idp" / "corporate.xml").write_text(METADATA, encoding="utf-8")
    directory_file = tmp_path / "directory.yaml"
    directory_file.write_text(
        "version: 1\nproviders:\n  saml:\n    - name: corporate\n"
        "      metadata_file: idp/corporate.xml\n",
        encoding="utf-8",
    )
    [saml] = declarative.load_file(directory_file).saml_providers
    assert saml.metadata == METADATA
    (tmp_path / "idp" / "corporate.xml").write_bytes(b"\xff\xfe not utf-8")
    [found] = problems(lambda: declarative.load_file(directory_file))
    assert found.endswith("corporate.xml` is not UTF-8 text")


# --- plan and apply --------------------------------------------------------------------------


def test_providers_are_created_updated_and_then_left_alone(
    store: Store, services: Services, account: Account
) -> None:
    data = with_providers(oidc=[github()], saml=[corporate()])
    assert apply(services, account, data) == [
        "+ oidc-provider token.actions.githubusercontent.com",
        "+ saml-provider corporate",
    ]
    assert plan(store, account, data) == []
    provider = entity(store, account, Kind.OIDC_PROVIDER, "token.actions.githubusercontent.com")
    assert provider.attrs["url"] == "https://token.actions.githubusercontent.com"
    assert provider.attrs["client_ids"] == ["sts.amazonaws.com"]
    assert provider.attrs["thumbprints"] == [THUMB]
    assert provider.tags == {"team": "ci"}
    saml = entity(store, account, Kind.SAML_PROVIDER, "corporate")
    assert saml.attrs["metadata"] == METADATA
    facts = IdpMetadata.from_json(saml.attrs["idp"])  # type: ignore[arg-type]
    assert facts.entity_id == "https://idp.example.test/metadata"

    changed = with_providers(
        oidc=[
            github(
                client_ids=["app-1", "sts.amazonaws.com", "app-2"],
                thumbprints=[OTHER_THUMB],
                tags={"team": "platform"},
            )
        ],
        saml=[corporate(metadata=METADATA_V2, tags={})],
    )
    assert apply(services, account, changed) == [
        "~ oidc-provider token.actions.githubusercontent.com: thumbprints",
        "~ oidc-provider token.actions.githubusercontent.com: tags",
        "~ saml-provider corporate: metadata",
        "~ saml-provider corporate: tags",
        "+ oidc-provider token.actions.githubusercontent.com: client id app-1",
        "+ oidc-provider token.actions.githubusercontent.com: client id app-2",
    ]
    assert plan(store, account, changed) == []
    # Thumbprints compare without regard to case or order.
    same = with_providers(
        oidc=[
            github(
                client_ids=["app-1", "sts.amazonaws.com", "app-2"],
                thumbprints=[OTHER_THUMB.lower()],
                tags={"team": "platform"},
            )
        ],
        saml=[corporate(metadata=METADATA_V2, tags={})],
    )
    assert plan(store, account, same) == []
    fewer = with_providers(oidc=[github(client_ids=["app-2"], thumbprints=[], tags={})])
    assert apply(services, account, fewer) == [
        "~ oidc-provider token.actions.githubusercontent.com: thumbprints",
        "~ oidc-provider token.actions.githubusercontent.com: tags",
        "- oidc-provider token.actions.githubusercontent.com: client id sts.amazonaws.com",
        "- oidc-provider token.actions.githubusercontent.com: client id app-1",
    ]
    provider = entity(store, account, Kind.OIDC_PROVIDER, "token.actions.githubusercontent.com")
    assert (provider.attrs["client_ids"], provider.attrs["thumbprints"]) == (["app-2"], [])
    assert entity(store, account, Kind.SAML_PROVIDER, "corporate").attrs["metadata"] == METADATA_V2


def test_provider_writes_are_audited_iam_calls(
    store: Store, services: Services, account: Account
) -> None:
    apply(services, account, with_providers(oidc=[github()], saml=[corporate()]))
    events = services.audit.events  # type: ignore[attr-defined]
    assert [e.event_name for e in events] == ["CreateOpenIDConnectProvider", "CreateSAMLProvider"]
    assert events[0].request_parameters["Url"] == "https://token.actions.githubusercontent.com"
    assert events[1].response_elements == {
        "sAMLProviderArn": f"arn:aws:iam::{account.id}:saml-provider/corporate"
    }


def test_changes_iam_cannot_make_to_providers_are_refused(
    store: Store, services: Services, account: Account
) -> None:
    local = {"url": "http://127.0.0.1:9999/realms/dev", "client_ids": ["cli"]}
    apply(services, account, with_providers(oidc=[local], saml=[corporate()]))
    version = store.directory_version()
    moved = with_providers(
        oidc=[{**local, "url": "https://127.0.0.1:9999/realms/dev"}],
        saml=[corporate(name="Corporate", tags={})],
    )
    assert problems(lambda: apply(services, account, moved)) == [
        "providers.oidc[0].url: the url of oidc-provider `127.0.0.1:9999/realms/dev` is "
        "`http://127.0.0.1:9999/realms/dev` and IAM cannot change it to "
        "`https://127.0.0.1:9999/realms/dev`; delete the provider first (or keep the url)",
        "providers.saml[0].name: the name of saml-provider `corporate` is `corporate` and IAM "
        "cannot change it to `Corporate`; delete the provider first (or keep the name)",
    ]
    assert store.directory_version() == version


def test_prune_deletes_providers_only_when_the_file_lists_them(
    store: Store, services: Services, account: Account
) -> None:
    apply(services, account, base_file())
    iam(services, account, "CreateOpenIDConnectProvider", Url="https://old.example.com")
    iam(services, account, "CreateSAMLProvider", Name="old", SAMLMetadataDocument=METADATA)
    # A file without `providers:` says nothing about them: --prune leaves them alone.
    assert plan(store, account, base_file(), prune=True) == []
    kept = {**base_file(), "providers": {"oidc": [github()]}}
    assert apply(services, account, kept, prune=True) == [
        "+ oidc-provider token.actions.githubusercontent.com",
        "- oidc-provider old.example.com",
        "- saml-provider old",
    ]
    assert [e.name for e in store.list_entities(account.id, Kind.OIDC_PROVIDER)] == [
        "token.actions.githubusercontent.com"
    ]
    assert store.list_entities(account.id, Kind.SAML_PROVIDER) == []
    assert plan(store, account, kept, prune=True) == []


def test_export_then_apply_changes_nothing_with_providers(
    store: Store, services: Services, account: Account
) -> None:
    apply(services, account, with_providers(oidc=[github()], saml=[corporate()]))
    iam(services, account, "CreateOpenIDConnectProvider", Url="http://localhost:8080")
    data = declarative.export(store, account)
    assert data["providers"] == {
        "oidc": [
            {"url": "http://localhost:8080"},
            {
                "url": "https://token.actions.githubusercontent.com",
                "client_ids": ["sts.amazonaws.com"],
                "thumbprints": [THUMB],
                "tags": {"team": "ci"},
            },
        ],
        "saml": [{"name": "corporate", "metadata": METADATA, "tags": {"owner": "it"}}],
    }
    for as_json in (False, True):
        text = declarative.dump(data, as_json)
        if not as_json:
            assert "metadata: |\n" in text  # metadata as a literal block
        desired = declarative.load_text(text, as_json=as_json, now=T0)
        assert declarative.plan(store, account, desired, prune=True) == []


@pytest.mark.parametrize("variant", ["expired validUntil", "billion laughs"])
def test_metadata_is_checked_again_when_applied(
    store: Store, services: Services, account: Account, variant: str
) -> None:
    """A file loaded without a time still meets the operation's own check when applied."""
    data = with_providers(saml=[corporate(metadata=BROKEN[variant][0])])
    if variant == "expired validUntil":
        desired = declarative.load_data(data)  # no `now`: expiry not checked while loading
        with pytest.raises(FedbrokerError) as caught:
            declarative.apply(services, account, desired)
        assert caught.value.code == "InvalidInput"
    else:
        assert problems(lambda: declarative.load_data(data))
    assert store.list_entities(account.id, Kind.SAML_PROVIDER) == []


# --- fedbroker's provider options ----------------------------------------------------------------


def test_provider_options_apply_export_and_round_trip(
    store: Store, services: Services, account: Account
) -> None:
    data = with_providers(oidc=[github(expose_claims=True)], saml=[corporate(allow_sha1=True)])
    assert declarative.load_data(data).oidc_providers[0].expose_claims is True
    apply(services, account, data)
    assert plan(store, account, data) == []
    oidc = entity(store, account, Kind.OIDC_PROVIDER, "token.actions.githubusercontent.com")
    saml = entity(store, account, Kind.SAML_PROVIDER, "corporate")
    assert oidc.attrs["expose_claims"] is True and saml.attrs["allow_sha1"] is True
    # To the IAM API the options are tags, so IAM clients see and set them.
    assert oidc.tags == {"team": "ci", "fedbroker:expose_claims": "true"}
    exported = declarative.export(store, account)["providers"]
    assert exported["oidc"][0]["expose_claims"] is True
    assert exported["oidc"][0]["tags"] == {"team": "ci"}
    assert exported["saml"][0]["allow_sha1"] is True
    assert exported["saml"][0]["tags"] == {"owner": "it"}
    for as_json in (False, True):
        text = declarative.dump({"version": 1, "providers": exported}, as_json)
        desired = declarative.load_text(text, as_json=as_json, now=T0)
        assert declarative.plan(store, account, desired) == []
    # Turning an option off is an Untag of its tag; left out means off.
    off = with_providers(oidc=[github()], saml=[corporate(allow_sha1=False)])
    assert apply(services, account, off) == [
        "~ oidc-provider token.actions.githubusercontent.com: tags",
        "~ saml-provider corporate: tags",
    ]
    oidc = entity(store, account, Kind.OIDC_PROVIDER, "token.actions.githubusercontent.com")
    saml = entity(store, account, Kind.SAML_PROVIDER, "corporate")
    assert "expose_claims" not in oidc.attrs and "allow_sha1" not in saml.attrs
    assert oidc.tags == {"team": "ci"}
    assert "expose_claims" not in declarative.export(store, account)["providers"]["oidc"][0]
    assert plan(store, account, off) == []


def test_provider_option_problems_are_located() -> None:
    data = with_providers(
        oidc=[github(expose_claims="yes", allow_sha1=True)],
        saml=[corporate(tags={"fedbroker:allow_sha1": "true"})],
    )
    found = problems(lambda: declarative.load_data(data, now=T0))
    assert found == [
        "providers.oidc[0].allow_sha1: unknown field; expected url, client_ids, thumbprints, "
        "expose_claims, tags",
        "providers.oidc[0].expose_claims: must be true or false",
        "providers.saml[0].tags.fedbroker:allow_sha1: fedbroker's options are fields of the "
        "provider, not tags",
    ]


def test_provider_options_through_the_iam_api(
    store: Store, services: Services, account: Account
) -> None:
    arn = iam(
        services,
        account,
        "CreateOpenIDConnectProvider",
        Url="https://idp.example.com",
        **{"Tags.member.1.Key": "fedbroker:Expose_Claims", "Tags.member.1.Value": "true"},
    )["OpenIDConnectProviderArn"]
    assert entity(store, account, Kind.OIDC_PROVIDER, "idp.example.com").attrs["expose_claims"]
    for key, value, message in [
        ("fedbroker:expose_claims", "yes", "is `true` or `false`, not `yes`"),
        ("fedbroker:allow_sha1", "true", "`fedbroker:allow_sha1` is not an option of OIDC"),
        ("fedbroker:other", "true", "`fedbroker:other` is not an option of OIDC"),
    ]:
        with pytest.raises(FedbrokerError) as refused:
            iam(
                services,
                account,
                "TagOpenIDConnectProvider",
                OpenIDConnectProviderArn=arn,
                **{"Tags.member.1.Key": key, "Tags.member.1.Value": value},
            )
        assert refused.value.code == "InvalidInput" and message in refused.value.message
    provider = entity(store, account, Kind.OIDC_PROVIDER, "idp.example.com")
    assert provider.tags == {"fedbroker:Expose_Claims": "true"}  # nothing changed
    iam(
        services,
        account,
        "TagOpenIDConnectProvider",
        OpenIDConnectProviderArn=arn,
        **{"Tags.member.1.Key": "fedbroker:expose_claims", "Tags.member.1.Value": "false"},
    )
    assert (
        "expose_claims" not in entity(store, account, Kind.OIDC_PROVIDER, "idp.example.com").attrs
    )
    saml_arn = iam(
        services, account, "CreateSAMLProvider", Name="legacy", SAMLMetadataDocument=METADATA
    )["SAMLProviderArn"]
    iam(
        services,
        account,
        "TagSAMLProvider",
        SAMLProviderArn=saml_arn,
        **{"Tags.member.1.Key": "fedbroker:allow_sha1", "Tags.member.1.Value": "true"},
    )
    assert entity(store, account, Kind.SAML_PROVIDER, "legacy").attrs["allow_sha1"] is True
    iam(
        services,
        account,
        "UntagSAMLProvider",
        SAMLProviderArn=saml_arn,
        **{"TagKeys.member.1": "FEDBROKER:ALLOW_SHA1"},
    )
    assert "allow_sha1" not in entity(store, account, Kind.SAML_PROVIDER, "legacy").attrs
    # Set otherwise (as `fedbroker sso configure-saml --allow-sha1` does, on the attribute
    # only), an option survives tag calls that do not name it, and the file sees it.
    legacy = entity(store, account, Kind.SAML_PROVIDER, "legacy")
    store.update_entity(replace(legacy, attrs={**legacy.attrs, "allow_sha1": True}))
    iam(
        services,
        account,
        "TagSAMLProvider",
        SAMLProviderArn=saml_arn,
        **{"Tags.member.1.Key": "owner", "Tags.member.1.Value": "it"},
    )
    assert entity(store, account, Kind.SAML_PROVIDER, "legacy").attrs["allow_sha1"] is True
    [exported] = declarative.export(store, account)["providers"]["saml"]
    assert exported["allow_sha1"] is True and exported["tags"] == {"owner": "it"}
