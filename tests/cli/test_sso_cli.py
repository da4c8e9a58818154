"""`fedbroker sso configure-oidc`: the relying-party client and the claim mapping (claims to
the source identity and session tags) stored in the provider entity; bad mappings refused with
the reason, nothing stored."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fedbroker.cli.main import main
from fedbroker.directory.ids import new_unique_id
from fedbroker.directory.model import Entity, Kind
from fedbroker.directory.sql import SqlStore

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NAME = "idp.example.test"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    result = CliRunner().invoke(main, ["init", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    store = SqlStore(f"sqlite:///{data / 'fedbroker.db'}")
    try:
        [account] = store.list_accounts()
        store.create_entity(
            Entity(
                Kind.OIDC_PROVIDER,
                account.id,
                NAME,
                new_unique_id(Kind.OIDC_PROVIDER.id_prefix),
                "/",
                T0,
                {"url": f"https://{NAME}", "client_ids": ["broker"]},
            )
        )
    finally:
        store.close()
    (tmp_path / "secret").write_text("client secret of the tests\n")
    return data


def configure(data_dir: Path, *extra: str) -> Result:
    return CliRunner().invoke(
        main,
        [
            "sso",
            "configure-oidc",
            "--data-dir",
            str(data_dir),
            "--provider-url",
            f"https://{NAME}",
            "--client-id",
            "broker",
            "--client-secret-file",
            str(data_dir.parent / "secret"),
            *extra,
        ],
    )


def attrs(data_dir: Path) -> dict[str, object]:
    store = SqlStore(f"sqlite:///{data_dir / 'fedbroker.db'}")
    try:
        [account] = store.list_accounts()
        return store.get_entity(account.id, Kind.OIDC_PROVIDER, NAME).attrs
    finally:
        store.close()


def test_the_claim_mapping_is_stored_and_replaced_on_each_run(data_dir: Path) -> None:
    done = configure(data_dir, "--source-identity-claim", "email", "--tag-claim", "groups=Groups")
    assert done.exit_code == 0, done.output
    assert attrs(data_dir)["sso_claims"] == {
        "source_identity": "email",
        "tags": {"groups": "Groups"},
    }
    assert "client secret of the tests" not in done.output
    again = configure(data_dir, "--tag-claim", "dept=Department")
    assert again.exit_code == 0, again.output
    assert attrs(data_dir)["sso_claims"] == {"tags": {"dept": "Department"}}
    assert attrs(data_dir)["rp_userinfo"] is False
    assert configure(data_dir, "--userinfo").exit_code == 0
    assert attrs(data_dir)["rp_userinfo"] is True


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (("--tag-claim", "groups"), "expected CLAIM=TAG"),
        (("--tag-claim", "groups=aws:Groups"), "is not a session tag key"),
        (("--tag-claim", "a=Team", "--tag-claim", "b=team"), "same tag key"),
        (("--source-identity-claim", "em ail"), "is not a claim name"),
    ],
)
def test_a_bad_mapping_is_refused_and_nothing_is_stored(
    data_dir: Path, flags: tuple[str, ...], reason: str
) -> None:
    done = configure(data_dir, *flags)
    assert done.exit_code != 0
    assert reason in done.output
    assert "rp_client_id" not in attrs(data_dir)
