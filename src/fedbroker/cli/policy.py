"""``fedbroker policy validate`` and ``fedbroker policy simulate``.

The output formats are a contract other tools parse: keep them stable.

* validate: one line per problem, ``FILE: statement N (Sid): FIELD: message`` (statements are
  numbered from 1), exit status 0 when every file is valid, 1 otherwise.
* simulate: one JSON result per request; with ``--jsonl`` one request per input line and one
  result per output line, in order, errors included as ``{"error": {...}}``.
"""

from __future__ import annotations

import json
import sys
from typing import IO

import click

from fedbroker.errors import MalformedPolicyDocumentError, PolicyTooLargeError
from fedbroker.policy import PolicyKind, parse_policy
from fedbroker.policy.simulate import Simulator


@click.group()
def policy() -> None:
    """Validate policy documents and simulate decisions."""


@policy.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--kind",
    type=click.Choice(PolicyKind.cli_names()),
    default="managed",
    show_default=True,
    help="Where the document is used; decides grammar and size limit.",
)
def validate(files: tuple[str, ...], kind: str) -> None:
    """Check policy documents; print each problem, exit 1 if any."""
    policy_kind = PolicyKind.from_name(kind)
    failed = False
    for path in files:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            click.echo(f"{path}: cannot read: {exc.strerror}")
            failed = True
            continue
        try:
            parse_policy(text, policy_kind, name=path)
        except MalformedPolicyDocumentError as exc:
            failed = True
            for problem in exc.problems:
                click.echo(f"{path}: {problem}")
        except PolicyTooLargeError as exc:
            failed = True
            click.echo(f"{path}: policy: {exc.message}")
    sys.exit(1 if failed else 0)


@policy.command()
@click.argument("file", type=click.File("r", encoding="utf-8"), default="-")
@click.option("--jsonl", is_flag=True, help="One request per line in, one result per line out.")
def simulate(file: IO[str], jsonl: bool) -> None:
    """Decide one request (or, with --jsonl, many) read from FILE or standard input."""
    simulator = Simulator()
    out = sys.stdout
    if jsonl:
        for line in file:
            if not line.strip():
                continue
            out.write(json.dumps(simulator.run_line(line), separators=(",", ":")))
            out.write("\n")
        out.flush()
        return
    result = simulator.run_line(file.read())
    click.echo(json.dumps(result, indent=2))
    sys.exit(1 if "error" in result else 0)
