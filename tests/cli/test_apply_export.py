"""`fedbroker apply` and `fedbroker export`: the output contract, exit statuses, and two
applies racing as separate processes on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from fedbroker.cli.main import main
from tests.support.postgres import PostgresUnavailableError, temporary_database
from tests.support.saml_metadata import BROKEN, idp_metadata

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "examples" / "directory.yaml"
FEDBROKER = str(Path(sys.executable).parent / "fedbroker")

EXAMPLE_CHANGES = [
    "+ oidc-provider ci.example.com",
    "+ policy ReadReports",
    "+ policy DeveloperBoundary",
    "+ group analysts",
    "+ user alice",
    "+ user bob",
    "+ role ci-deploy",
    "+ group analysts: policy ReadReports",
    "+ group analysts: inline policy read-dashboards",
    "+ user alice: group analysts",
    "+ user alice: inline policy own-prefix",
    "+ user bob: group analysts",
    "+ role ci-deploy: policy ReadReports",
    "+ role ci-deploy: inline policy deploy",
]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A directory after `fedbroker init` with an administrator (who holds an access key)."""
    data = tmp_path / "data"
    result = run(
        "init",
        "--data-dir",
        str(data),
        "--bootstrap-admin",
        "admin",
        "--credentials-file",
        str(tmp_path / "credentials"),
    )
    assert result.exit_code == 0, result.output
    return data


def lines(result: Result) -> list[str]:
    return result.stdout.splitlines()


def exported(data: Path) -> dict[str, Any]:
    result = run("export", "--data-dir", str(data), "--format", "json")
    assert result.exit_code == 0, result.output
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def example_with(tmp_path: Path, change: Any, name: str = "edited.yaml") -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    change(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_apply_creates_then_reports_no_changes(data_dir: Path) -> None:
    first = run("apply", str(EXAMPLE), "--data-dir", str(data_dir))
    assert first.exit_code == 0, first.output
    assert lines(first) == EXAMPLE_CHANGES
    second = run("apply", str(EXAMPLE), "--data-dir", str(data_dir))
    assert second.exit_code == 0, second.output
    assert second.stdout == "no changes\n"
    events = [
        json.loads(line)
        for line in (data_dir / "audit" / "events.jsonl").read_text().split("\n")
        if line
    ]
    assert [e["eventName"] for e in events][:4] == [
        "CreateOpenIDConnectProvider",
        "CreatePolicy",
        "CreatePolicy",
        "CreateGroup",
    ]
    assert {e["userIdentity"]["invokedBy"] for e in events} == {"fedbroker apply"}
    assert {e["userIdentity"]["type"] for e in events} == {"Root"}


def test_apply_prints_each_update(data_dir: Path, tmp_path: Path) -> None:
    run("apply", str(EXAMPLE), "--data-dir", str(data_dir))

    def edit(data: dict[str, Any]) -> None:
        data["policies"][0]["document"]["Statement"][0]["Action"] = "s3:GetObject"
        data["roles"][0]["trust"]["Statement"][0]["Condition"]["StringEquals"] = {
            "ci.example.com:sub": "repo:example/main:ref:refs/heads/release"
        }
        data["users"][1]["groups"] = []
        data["users"][0]["tags"] = {"team": "blue", "cost-center": "4711"}

    result = run("apply", str(example_with(tmp_path, edit)), "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert lines(result) == [
        "~ policy ReadReports: document (new default version v2)",
        "~ user alice: tags",
        "~ role ci-deploy: trust policy",
        "- user bob: group analysts",
    ]
    again = run("apply", str(example_with(tmp_path, edit)), "--data-dir", str(data_dir))
    assert again.stdout == "no changes\n"


def test_dry_run_changes_nothing(data_dir: Path) -> None:
    before = exported(data_dir)
    result = run("apply", str(EXAMPLE), "--data-dir", str(data_dir), "--dry-run")
    assert result.exit_code == 0, result.output
    assert lines(result) == [*EXAMPLE_CHANGES, "(dry run: nothing was changed)"]
    assert exported(data_dir) == before


def test_an_invalid_file_changes_nothing_and_lists_every_problem(
    data_dir: Path, tmp_path: Path
) -> None:
    before = exported(data_dir)

    def break_it(data: dict[str, Any]) -> None:
        data["users"][0]["inline"]["extra"] = {"Version": "2012-10-17", "Statement": [{}]}
        data["users"][1]["name"] = "not valid!"
        data["roles"][0]["max_session_duration"] = 10
        data["groups"][0]["polices"] = []
        data["providers"]["oidc"][0]["url"] = "http://ci.example.com"

    bad = example_with(tmp_path, break_it)
    result = run("apply", str(bad), "--data-dir", str(data_dir))
    assert result.exit_code == 1
    assert result.stdout == ""
    problems = result.stderr.splitlines()
    assert problems[-1] == "7 problems; nothing was changed"
    assert all(p.startswith(f"{bad}: ") for p in problems[:-1])
    found = [p.removeprefix(f"{bad}: ") for p in problems[:-1]]
    for expected in (
        "providers.oidc[0].url: the URL `http://ci.example.com` must begin with https://",
        "groups[0].polices: unknown field; did you mean `policies`?",
        "users[0].inline.extra: statement 1: Effect:",
        "users[0].inline.extra: statement 1: Action:",
        "users[0].inline.extra: statement 1: Resource:",
        "users[1].name: `not valid!` is not a valid name",
        "roles[0].max_session_duration: must be a whole number of seconds",
    ):
        assert any(p.startswith(expected) for p in found), (expected, found)
    assert exported(data_dir) == before
    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("version: 1\nusers: [\n")
    result = run("apply", str(syntax), "--data-dir", str(data_dir))
    assert result.exit_code == 1 and result.stderr.startswith(f"{syntax}: line 3, column 1:")


def test_prune_deletes_only_what_is_safe(data_dir: Path, tmp_path: Path) -> None:
    run("apply", str(EXAMPLE), "--data-dir", str(data_dir))
    # The administrator `fedbroker init` made holds an access key and is not in the file.
    refused = run("apply", str(EXAMPLE), "--data-dir", str(data_dir), "--prune")
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        f"{EXAMPLE}: --prune: user `admin` is not in the file but has 1 access key; add it to "
        "`users`, or list it under `prune.users_with_credentials` to delete it together with "
        "its access keys",
        "1 problem; nothing was changed",
    ]
    # Export keeps everyone; drop bob and the role from it and prune.
    full = tmp_path / "full.yaml"
    assert run("export", "--data-dir", str(data_dir), "-o", str(full)).exit_code == 0

    def drop(data: dict[str, Any]) -> None:
        data["users"] = [u for u in data["users"] if u["name"] != "bob"]
        del data["roles"]

    smaller = tmp_path / "smaller.yaml"
    data = yaml.safe_load(full.read_text())
    drop(data)
    smaller.write_text(yaml.safe_dump(data))
    result = run("apply", str(smaller), "--data-dir", str(data_dir), "--prune")
    assert result.exit_code == 0, result.output
    assert lines(result) == [
        "- user bob: group analysts",
        "- user bob",
        "- role ci-deploy: inline policy deploy",
        "- role ci-deploy: policy ReadReports",
        "- role ci-deploy",
    ]
    after = exported(data_dir)
    assert [u["name"] for u in after["users"]] == ["admin", "alice"]
    assert "roles" not in after


def test_export_then_apply_reports_no_changes(data_dir: Path, tmp_path: Path) -> None:
    run("apply", str(EXAMPLE), "--data-dir", str(data_dir))
    stdout = run("export", "--data-dir", str(data_dir))
    assert stdout.exit_code == 0
    assert stdout.stdout.startswith("# fedbroker directory file: see docs/directory-file.md\n")
    assert "version: 1\n" in stdout.stdout
    for name, extra in (("e.yaml", []), ("e.json", []), ("e.txt", ["--format", "json"])):
        target = tmp_path / name
        result = run("export", "--data-dir", str(data_dir), "-o", str(target), *extra)
        assert result.exit_code == 0, result.output
        if name != "e.yaml":
            json.loads(target.read_text())  # JSON, by extension or by --format
            shutil.copy(target, tmp_path / "as.json")
            target = tmp_path / "as.json"
        applied = run("apply", str(target), "--data-dir", str(data_dir), "--prune")
        assert applied.exit_code == 0, applied.output
        assert applied.stdout == "no changes\n"


def test_saml_metadata_files_apply_and_export_inline(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "idp").mkdir()
    (tmp_path / "idp" / "corporate.xml").write_text(idp_metadata())
    directory_file = tmp_path / "providers.yaml"
    directory_file.write_text(
        "version: 1\n"
        "providers:\n"
        "  saml:\n"
        "    - name: corporate\n"
        "      metadata_file: idp/corporate.xml\n"
        "      tags: {owner: it}\n"
    )
    first = run("apply", str(directory_file), "--data-dir", str(data_dir))
    assert first.exit_code == 0, first.output
    assert lines(first) == ["+ saml-provider corporate"]
    assert run("apply", str(directory_file), "--data-dir", str(data_dir)).stdout == "no changes\n"
    [saml] = exported(data_dir)["providers"]["saml"]
    assert saml == {"name": "corporate", "metadata": idp_metadata(), "tags": {"owner": "it"}}
    full = tmp_path / "full.yaml"
    assert run("export", "--data-dir", str(data_dir), "-o", str(full)).exit_code == 0
    again = run("apply", str(full), "--data-dir", str(data_dir), "--prune")
    assert again.exit_code == 0, again.output
    assert again.stdout == "no changes\n"

    # Metadata the IAM API would refuse is refused with the file's location; nothing changes.
    (tmp_path / "idp" / "corporate.xml").write_text(BROKEN["XXE"][0])
    (tmp_path / "idp" / "expired.xml").write_text(BROKEN["expired validUntil"][0])
    with directory_file.open("a") as out:
        out.write("    - name: expired\n      metadata_file: idp/expired.xml\n")
    refused = run("apply", str(directory_file), "--data-dir", str(data_dir))
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        f"{directory_file}: providers.saml[0].metadata_file: the metadata document has a "
        "document type declaration (<!DOCTYPE>); DTDs and entities are not allowed",
        f"{directory_file}: providers.saml[1].metadata_file: the metadata expired at "
        "2001-01-01T00:00:00Z (`validUntil`)",
        "2 problems; nothing was changed",
    ]
    assert exported(data_dir)["providers"]["saml"] == [saml]


def test_commands_need_an_initialised_directory(tmp_path: Path) -> None:
    result = run("apply", str(EXAMPLE), "--data-dir", str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    assert "run `fedbroker init` first" in result.output
    (tmp_path / "empty").mkdir()
    result = run("export", "--data-dir", str(tmp_path / "empty"))
    assert result.exit_code == 1
    assert "this directory has no account; run `fedbroker init` first" in result.output
    result = run("apply", str(tmp_path / "missing.yaml"), "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "cannot read" in result.stderr


# --- two processes ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_args(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    if request.param == "sqlite":
        yield []
        return
    try:
        with temporary_database() as url:
            yield ["--database-url", url]
    except PostgresUnavailableError as error:
        pytest.fail(str(error), pytrace=False)


def test_two_applies_at_once_leave_the_directory_equal_to_the_file(
    tmp_path: Path, database_args: list[str]
) -> None:
    data = tmp_path / "data"
    common = ["--data-dir", str(data), *database_args]
    subprocess.run([FEDBROKER, "init", *common], check=True, capture_output=True, timeout=120)
    applies = [
        subprocess.Popen(
            [FEDBROKER, "apply", str(EXAMPLE), *common],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in applies]
    for process, (out, err) in zip(applies, outputs, strict=True):
        assert process.returncode == 0, (out, err)
    made = [line for out, _ in outputs for line in out.splitlines() if line != "no changes"]
    # Every entity was created by exactly one of the two.
    creations = sorted(line for line in made if line.startswith("+ ") and ":" not in line)
    policies_won_late = sorted(
        "+ policy " + line.split()[2].rstrip(":")
        for line in made
        if line.endswith(": document (version v1)")
    )
    assert sorted(creations + policies_won_late) == sorted(
        line for line in EXAMPLE_CHANGES if ":" not in line
    )
    final = subprocess.run(
        [FEDBROKER, "apply", str(EXAMPLE), *common],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert final.returncode == 0 and final.stdout == "no changes\n", final
