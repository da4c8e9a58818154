"""A checker for a resource service that runs beside the broker: same directory, same keys.

The service opens the broker's directory (its data directory, or the PostgreSQL database every
replica shares) and its master key, and checks requests in-process, with no call to the broker.
It never changes the directory: no migration, no key creation (start the broker, or ``fedbroker
init``, first); like the broker, it records when a long-term access key was last used, at most
once a minute per key. Directory changes and key rotations reach it within ``check_interval``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fedbroker.config import ConfigError, load_settings, master_key_from_env
from fedbroker.credentials.check import RequestChecker
from fedbroker.credentials.keyring import KeyRing
from fedbroker.credentials.sealing import load_master_key
from fedbroker.directory.sql import SqlStore


def open_local_checker(
    data_dir: Path,
    database_url: str | None = None,
    config_file: Path | None = None,
    *,
    check_interval: timedelta = timedelta(seconds=1),
) -> RequestChecker:
    """A :class:`RequestChecker` over the broker's directory in ``data_dir`` (or
    ``database_url``), with the broker's settings from ``config_file`` and ``FEDBROKER_*``."""
    settings = load_settings(
        config_file, overrides={"data_dir": data_dir, "database_url": database_url}
    )
    key_file = settings.effective_master_key_file
    env_key = master_key_from_env()
    if env_key is None and not key_file.exists():
        raise ConfigError(
            f"no master key at `{key_file}` and FEDBROKER_MASTER_KEY is not set: "
            "point at the broker's data directory"
        )
    master_key = load_master_key(key_file, env_key, settings.dev_mode)
    store = SqlStore(settings.effective_database_url, auto_migrate=False)
    keyring = KeyRing(store, master_key, check_interval=check_interval)
    return RequestChecker(store, master_key, keyring, check_interval=check_interval)
