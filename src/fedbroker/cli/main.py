"""``fedbroker`` command: entry point and command groups.

Commands are imported when they are run, so ``fedbroker policy ...`` does not pay for the
server stack (SQLAlchemy, cryptography, Flask) it never uses.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from fedbroker import __version__

COMMANDS = {
    "policy": "fedbroker.cli.policy:policy",
    "init": "fedbroker.cli.server:init",
    "serve": "fedbroker.cli.server:serve",
    "apply": "fedbroker.cli.directory:apply_file",
    "export": "fedbroker.cli.directory:export_file",
    "root": "fedbroker.cli.root:root",
    "sessions": "fedbroker.cli.sessions:sessions",
    "keys": "fedbroker.cli.keys:keys",
    "sso": "fedbroker.cli.sso:sso",
    # The CLI credential helper (issue 6): the developer's side.
    "configure": "fedbroker.cli.helper:configure",
    "login": "fedbroker.cli.helper:login",
    "logout": "fedbroker.cli.helper:logout",
    "whoami": "fedbroker.cli.helper:whoami",
    "credential-process": "fedbroker.cli.helper:credential_process",
    "exec": "fedbroker.cli.helper:exec_command",
    "serve-credentials": "fedbroker.cli.helper:serve_credentials",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command: Any = getattr(importlib.import_module(module), attribute)
        return command if isinstance(command, click.Command) else None


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="fedbroker")
def main() -> None:
    """fedbroker: identity and access broker in the shape of AWS IAM + STS."""
