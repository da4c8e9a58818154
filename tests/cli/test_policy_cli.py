"""The `fedbroker policy` command-line contract."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fedbroker.cli.main import main

GOOD = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
}
BAD = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
        {
            "Sid": "Oops",
            "Effect": "allow",
            "Action": "s3:GetObject",
            "Resource": "*",
            "Condition": {"StringEqual": {"aws:username": "x"}},
        },
    ],
}


def request(action: str = "s3:GetObject", **policies: Any) -> dict[str, Any]:
    return {
        "policies": policies,
        "request": {
            "action": action,
            "resource": "arn:aws:s3:::b/k",
            "principal": "arn:aws:iam::111122223333:user/alice",
        },
    }


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write(tmp_path: Path, name: str, content: Any) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_validate_ok(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["policy", "validate", write(tmp_path, "good.json", GOOD)])
    assert result.exit_code == 0
    assert result.output == ""


def test_validate_prints_each_problem_and_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    good = write(tmp_path, "good.json", GOOD)
    bad = write(tmp_path, "bad.json", BAD)
    result = runner.invoke(main, ["policy", "validate", good, bad])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{bad}: statement 2 (Oops): Effect: must be `Allow` or `Deny`, got `allow` "
        "(it is case-sensitive)",
        f"{bad}: statement 2 (Oops): Condition.StringEqual: unknown condition operator "
        "`StringEqual`; did you mean `StringEquals`?",
    ]


def test_validate_kind_size_and_unreadable(runner: CliRunner, tmp_path: Path) -> None:
    trust = write(tmp_path, "trust.json", GOOD)
    result = runner.invoke(main, ["policy", "validate", "--kind", "trust", trust])
    assert result.exit_code == 1
    assert "a role trust policy must name a principal" in result.output
    big = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": [f"s3:Get{i:05d}" for i in range(400)], "Resource": "*"}
        ],
    }
    result = runner.invoke(
        main, ["policy", "validate", "--kind", "inline-user", write(tmp_path, "big.json", big)]
    )
    assert result.exit_code == 1
    assert "user inline policy is" in result.output and "the limit is 2048" in result.output
    result = runner.invoke(main, ["policy", "validate", str(tmp_path / "missing.json")])
    assert result.exit_code == 1
    assert "cannot read" in result.output


def test_simulate_from_file_and_stdin(runner: CliRunner, tmp_path: Path) -> None:
    body = request(identity=[GOOD])
    result = runner.invoke(main, ["policy", "simulate", write(tmp_path, "r.json", body)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["decision"] == "Allow"
    result = runner.invoke(
        main, ["policy", "simulate"], input=json.dumps(request("s3:PutObject", identity=[GOOD]))
    )
    out = json.loads(result.output)
    assert out["decision"] == "ImplicitDeny"
    assert out["explanation"]["decided_by"] == "identity"


def test_simulate_malformed_document_gives_error_object(runner: CliRunner) -> None:
    result = runner.invoke(main, ["policy", "simulate"], input=json.dumps(request(identity=[BAD])))
    assert result.exit_code == 1
    error = json.loads(result.output)["error"]
    assert error["code"] == "MalformedPolicyDocument"
    assert error["message"].startswith("identity[0]: statement 2 (Oops): Effect:")


@pytest.mark.parametrize(
    ("line", "code", "fragment"),
    [
        ("{not json", "ValidationError", "the request is not valid JSON"),
        ('{"policies": {}, "policies": {}}', "ValidationError", "duplicate key `policies`"),
        ("[]", "ValidationError", "must be a JSON object"),
        (
            '{"policies": {}, "request": {"action": "GetObject"}}',
            "ValidationError",
            "`request.action`",
        ),
        (
            '{"policies": {"idnetity": []}, "request": {"action": "s3:GetObject"}}',
            "ValidationError",
            "unknown policy type `idnetity`",
        ),
        (
            '{"policies": {}, "request": {"action": "s3:X", "context": {"k": {"a": 1}}}}',
            "ValidationError",
            "context key `k`",
        ),
        (
            '{"policies": {}, "request": {"action": "s3:X", "principal": '
            '"arn:aws:iam::111122223333:user/a", "principal_type": "Robot"}}',
            "ValidationError",
            "unknown principal_type",
        ),
        (
            '{"policies": {"scp": [{"Statement": []}]}, "request": {"action": "s3:X"}}',
            "ValidationError",
            "list of levels",
        ),
    ],
)
def test_simulate_jsonl_errors_do_not_stop_the_run(
    runner: CliRunner, line: str, code: str, fragment: str
) -> None:
    ok = json.dumps(request(identity=[GOOD]))
    result = runner.invoke(main, ["policy", "simulate", "--jsonl"], input=f"{ok}\n{line}\n\n{ok}\n")
    assert result.exit_code == 0
    outputs = [json.loads(x) for x in result.output.splitlines()]
    assert len(outputs) == 3
    assert outputs[0]["decision"] == outputs[2]["decision"] == "Allow"
    assert outputs[1]["error"]["code"] == code
    assert fragment in outputs[1]["error"]["message"]


def test_simulate_jsonl_keeps_order(runner: CliRunner) -> None:
    actions = ["s3:GetObject", "s3:PutObject"] * 50
    lines = "\n".join(json.dumps(request(a, identity=[GOOD])) for a in actions)
    result = runner.invoke(main, ["policy", "simulate", "--jsonl"], input=lines)
    decisions = [json.loads(x)["decision"] for x in result.output.splitlines()]
    assert decisions == ["Allow", "ImplicitDeny"] * 50


def test_installed_entry_point_runs_the_readme_example() -> None:
    exe = shutil.which("fedbroker") or str(Path(__file__).parents[2] / ".venv/bin/fedbroker")
    example = Path(__file__).parents[2] / "config/examples/simulate-request.json"
    done = subprocess.run(
        [exe, "policy", "simulate", str(example)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["decision"] == "Allow"


def test_simulate_jsonl_cache_never_hides_a_malformed_line(runner: CliRunner) -> None:
    policies = json.dumps({"identity": [GOOD]})
    ok = f'{{"policies": {policies}, "request": {json.dumps(request()["request"])}}}'
    duplicated = policies.replace('"Effect": "Allow"', '"Effect": "Deny", "Effect": "Allow"')
    bad_policies = ok.replace(policies, duplicated)
    bad_request = ok.replace('"action": "s3:GetObject"', '"action": "s3:GetObject", "action": "x"')
    extra_field = ok[:-1] + ', "extra": 1}'
    lines = "\n".join([ok, bad_policies, bad_request, extra_field, ok])
    result = runner.invoke(main, ["policy", "simulate", "--jsonl"], input=lines)
    outputs = [json.loads(x) for x in result.output.splitlines()]
    assert [o.get("decision") for o in outputs] == ["Allow", None, None, None, "Allow"]
    assert "duplicate key `Effect`" in outputs[1]["error"]["message"]
    assert "duplicate key `action`" in outputs[2]["error"]["message"]
    assert "unknown field `extra`" in outputs[3]["error"]["message"]
