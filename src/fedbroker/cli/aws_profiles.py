"""Profiles of the CLI credential helper in the AWS config file (``~/.aws/config``).

Each profile the helper writes looks like::

    [profile dev-123456789012]
    credential_process = fedbroker credential-process --profile dev-123456789012
    fedbroker_url = https://broker.example.com
    fedbroker_role_arn = arn:aws:iam::123456789012:role/dev
    fedbroker_provider = idp.example.com
    fedbroker_duration = 3600          (optional)
    region = us-east-1

The file is edited line by line, not re-serialised, so that other sections, comments and keys a
user added to a helper profile (``region``, ``output``, ``fedbroker_device_code = true``...)
survive a re-run. A section is the helper's own when its ``credential_process`` runs
``fedbroker credential-process`` and its ``fedbroker_url`` is the broker being configured: only
those are updated or pruned.
"""

from __future__ import annotations

import configparser
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

_HEADER = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*[=:]\s*(.*?)\s*$")
_NAME = re.compile(r"[^A-Za-z0-9._+@-]+")
PROCESS = "fedbroker credential-process --profile {name}"
OWN_KEYS = ("credential_process", "fedbroker_url", "fedbroker_role_arn", "fedbroker_provider")


class ProfileError(Exception):
    """A profile that is missing or lacks the helper's settings (message safe to print)."""


@dataclass(frozen=True)
class HelperProfile:
    name: str
    url: str
    role_arn: str
    provider: str | None
    duration: int | None
    device_code: bool


def section_name(profile: str) -> str:
    return "default" if profile == "default" else f"profile {profile}"


def read_profile(path: Path, name: str) -> HelperProfile:
    """The helper's settings of profile ``name`` (``ProfileError`` if absent or incomplete)."""
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as error:
        raise ProfileError(f"`{path}` cannot be read: {error.message}") from None
    section = section_name(name)
    if not parser.has_section(section):
        raise ProfileError(f"profile `{name}` is not in `{path}`; run `fedbroker configure`")
    values = dict(parser.items(section))
    url = values.get("fedbroker_url", "").strip()
    role_arn = values.get("fedbroker_role_arn", "").strip()
    if not url or not role_arn:
        raise ProfileError(
            f"profile `{name}` has no fedbroker_url and fedbroker_role_arn; "
            "run `fedbroker configure`"
        )
    duration = values.get("fedbroker_duration", "").strip()
    if duration and not duration.isdigit():
        raise ProfileError(f"profile `{name}`: fedbroker_duration must be a number of seconds")
    return HelperProfile(
        name=name,
        url=url.rstrip("/"),
        role_arn=role_arn,
        provider=values.get("fedbroker_provider", "").strip() or None,
        duration=int(duration) if duration else None,
        device_code=values.get("fedbroker_device_code", "").strip().lower() in ("true", "1", "yes"),
    )


def profile_url(path: Path, name: str) -> tuple[str, str | None, bool]:
    """``fedbroker_url``, ``fedbroker_provider`` and the device-code setting of a profile."""
    profile = read_profile(path, name)
    return profile.url, profile.provider, profile.device_code


def profile_name(template: str, fields: dict[str, str]) -> str:
    """A profile name from ``template`` (``{role_name}``, ``{account_id}``, ``{account}``,
    ``{provider}``), reduced to characters every AWS tool accepts in a profile name."""
    try:
        raw = template.format(**fields)
    except (KeyError, IndexError, ValueError) as error:
        raise ProfileError(f"the name template `{template}` is invalid: {error}") from None
    name = _NAME.sub("-", raw).strip("-")
    if not name:
        raise ProfileError(f"the name template `{template}` gives an empty name")
    return name


@dataclass(frozen=True)
class Wanted:
    name: str
    values: dict[str, str]  # the helper's keys, in order


@dataclass(frozen=True)
class Written:
    added: tuple[str, ...]
    updated: tuple[str, ...]
    pruned: tuple[str, ...]


def write_profiles(path: Path, url: str, provider: str, wanted: list[Wanted]) -> Written:
    """Add/update the ``wanted`` profiles of broker ``url`` and prune its stale ones (those of
    the same broker and provider that are no longer offered)."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    blocks = _blocks(lines)
    by_name = {w.name: w for w in wanted}
    added: list[str] = []
    updated: list[str] = []
    pruned: list[str] = []
    out: list[str] = []
    seen: set[str] = set()
    for header, body in blocks:
        profile = _profile_of(header)
        if header is not None and profile is not None and profile in by_name:
            seen.add(profile)
            updated.append(profile)
            out.extend([header, *_update(body, by_name[profile].values)])
        elif profile is not None and _owned(body, url, provider):
            pruned.append(profile)
        else:
            out.extend([header, *body] if header is not None else body)
    for item in wanted:
        if item.name in seen:
            continue
        added.append(item.name)
        if out and out[-1].strip():
            out.append("")
        out.append(f"[{section_name(item.name)}]")
        out.extend(f"{k} = {v}" for k, v in item.values.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, "\n".join(out).rstrip("\n") + "\n")
    return Written(tuple(added), tuple(updated), tuple(pruned))


def _blocks(lines: list[str]) -> list[tuple[str | None, list[str]]]:
    blocks: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in lines:
        if _HEADER.match(line):
            blocks.append((line, []))
        else:
            blocks[-1][1].append(line)
    return blocks


def _profile_of(header: str | None) -> str | None:
    if header is None:
        return None
    match = _HEADER.match(header)
    assert match is not None
    name = match.group(1)
    if name == "default":
        return "default"
    if name.startswith("profile "):
        return name[len("profile ") :].strip()
    return None


def _keys(body: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in body:
        match = _KEY.match(line)
        if match and not line.startswith((" ", "\t")):
            found[match.group(1)] = match.group(2)
    return found


def _owned(body: list[str], url: str, provider: str) -> bool:
    keys = _keys(body)
    return (
        keys.get("credential_process", "").startswith("fedbroker credential-process")
        and keys.get("fedbroker_url", "").rstrip("/") == url.rstrip("/")
        and keys.get("fedbroker_provider", provider) == provider
    )


def _update(body: list[str], values: dict[str, str]) -> list[str]:
    """Our keys set to ``values`` in place (others kept); missing ones appended."""
    out: list[str] = []
    done: set[str] = set()
    for line in body:
        match = _KEY.match(line)
        key = match.group(1) if match and not line.startswith((" ", "\t")) else None
        if key in values:
            out.append(f"{key} = {values[key]}")
            done.add(key)
        else:
            out.append(line)
    while out and not out[-1].strip():
        out.pop()
    out.extend(f"{k} = {v}" for k, v in values.items() if k not in done)
    out.append("")
    return out


def _write_atomically(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
