"""``fedbroker`` command: entry point and command groups."""

from __future__ import annotations

import click

from fedbroker import __version__
from fedbroker.cli.directory import apply_file, export_file
from fedbroker.cli.policy import policy
from fedbroker.cli.server import init, serve


@click.group()
@click.version_option(__version__, prog_name="fedbroker")
def main() -> None:
    """fedbroker: identity and access broker in the shape of AWS IAM + STS."""


main.add_command(policy)
main.add_command(init)
main.add_command(serve)
main.add_command(apply_file)
main.add_command(export_file)
