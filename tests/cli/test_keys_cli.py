"""`fedbroker keys list|rotate|retire`: one line per key, rotation and retirement audited, and a
running ring that sees the change without a restart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from fedbroker.cli.main import main
from fedbroker.clock import FixedClock
from fedbroker.credentials.keyring import KeyRing
from fedbroker.credentials.sealing import load_master_key
from fedbroker.directory.sql import SqlStore

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CREATED = "2024-05-01T12:00:00Z"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    result = CliRunner().invoke(main, ["init", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    return data


def keys(data_dir: Path, *args: str, clock: FixedClock | None = None) -> Result:
    return CliRunner().invoke(
        main, ["keys", *args, "--data-dir", str(data_dir)], obj=clock or FixedClock(T0)
    )


def rows(result: Result) -> list[list[str]]:
    assert result.exit_code == 0, result.output
    return [line.split() for line in result.output.splitlines()]


def audit_events(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "audit" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_empty_ring_lists_nothing(data_dir: Path) -> None:
    assert rows(keys(data_dir, "list")) == []


def test_rotate_adds_a_key_and_the_old_one_retires(data_dir: Path) -> None:
    [first] = rows(keys(data_dir, "rotate"))
    assert first[1:] == ["seal", "A256GCM", "active", CREATED]
    assert first[0].startswith("a256gcm-")

    clock = FixedClock(T0 + timedelta(hours=1))
    second, old = rows(keys(data_dir, "rotate", "--purpose", "seal", clock=clock))
    assert second[1:] == ["seal", "A256GCM", "active", "2024-05-01T13:00:00Z"]
    assert old == [first[0], "seal", "A256GCM", "retiring", CREATED]

    assert rows(keys(data_dir, "list")) == [old, second]


def test_the_algorithm_implies_the_purpose(data_dir: Path) -> None:
    [es256] = rows(keys(data_dir, "rotate", "--algorithm", "ES256"))
    assert es256[1:3] == ["sign", "ES256"]
    [eddsa] = rows(keys(data_dir, "rotate", "--purpose", "sign", "--algorithm", "EdDSA"))
    assert eddsa[1:3] == ["sign", "EdDSA"]
    [default_signer, _] = rows(keys(data_dir, "rotate", "--purpose", "sign"))
    assert default_signer[1:3] == ["sign", "ES256"]


def test_a_mismatched_purpose_and_algorithm_is_a_usage_error(data_dir: Path) -> None:
    result = keys(data_dir, "rotate", "--purpose", "seal", "--algorithm", "RS256")
    assert result.exit_code == 2
    assert "not a seal algorithm" in result.output
    assert rows(keys(data_dir, "list")) == []
    unknown = keys(data_dir, "rotate", "--algorithm", "HS256")
    assert unknown.exit_code == 2


def test_retire(data_dir: Path) -> None:
    [first] = rows(keys(data_dir, "rotate"))
    refused = keys(data_dir, "retire", first[0])
    assert refused.exit_code == 1
    assert "rotate first" in refused.output

    rows(keys(data_dir, "rotate"))
    [retired] = rows(keys(data_dir, "retire", first[0]))
    assert retired == [first[0], "seal", "A256GCM", "retired", CREATED]

    again = keys(data_dir, "retire", first[0])
    assert again.exit_code == 1 and "already retired" in again.output
    missing = keys(data_dir, "retire", "a256gcm-nosuchky")
    assert missing.exit_code == 1 and "no key `a256gcm-nosuchky`" in missing.output


def test_rotations_and_retirements_are_audited(data_dir: Path) -> None:
    [first] = rows(keys(data_dir, "rotate"))
    [second, _] = rows(keys(data_dir, "rotate"))
    keys(data_dir, "retire", second[0])  # refused: the active key
    keys(data_dir, "retire", first[0])
    events = [e for e in audit_events(data_dir) if e["eventSource"] == "keys.fedbroker"]
    assert [(e["eventName"], e.get("errorCode")) for e in events] == [
        ("RotateKey", None),
        ("RotateKey", None),
        ("RetireKey", "InvalidInput"),
        ("RetireKey", None),
    ]
    assert events[1]["responseElements"] == {
        "keyId": second[0],
        "purpose": "seal",
        "algorithm": "A256GCM",
        "retiring": [first[0]],
    }
    assert events[3]["requestParameters"] == {"keyId": first[0]}
    assert events[0]["userIdentity"]["type"] == "Root"
    assert events[0]["userIdentity"]["invokedBy"] == "fedbroker keys"
    assert events[0]["eventTime"] == CREATED
    assert "PRIVATE" not in (data_dir / "audit" / "events.jsonl").read_text()


def test_a_running_ring_picks_up_a_rotation_from_the_command(data_dir: Path) -> None:
    store = SqlStore(f"sqlite:///{data_dir / 'fedbroker.db'}")
    try:
        master_key = load_master_key(data_dir / "master.key", None, dev_mode=True)
        ring = KeyRing(store, master_key)
        ring.ensure_keys(T0)
        before = ring.seal_key(T0).kid
        [new, old] = rows(keys(data_dir, "rotate"))
        assert old[0] == before
        assert ring.seal_key(T0 + timedelta(seconds=2)).kid == new[0]
    finally:
        store.close()


def test_list_shows_every_key_the_server_creates(data_dir: Path) -> None:
    store = SqlStore(f"sqlite:///{data_dir / 'fedbroker.db'}")
    try:
        master_key = load_master_key(data_dir / "master.key", None, dev_mode=True)
        KeyRing(store, master_key).ensure_keys(T0)
    finally:
        store.close()
    listed = rows(keys(data_dir, "list"))
    assert sorted((r[1], r[2], r[3]) for r in listed) == [
        ("seal", "A256GCM", "active"),
        ("sign", "ES256", "active"),
        ("sign", "ES384", "active"),
        ("sign", "RS256", "active"),
    ]
