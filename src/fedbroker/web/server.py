"""Serving the app with gunicorn's sync workers (see PERFORMANCE.md on gthread)."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from fedbroker.config import Settings
from fedbroker.web.app import create_app


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        self.cfg.set("bind", f"{self.settings.host}:{self.settings.port}")
        self.cfg.set("workers", self.settings.workers)
        self.cfg.set("worker_class", "sync")
        self.cfg.set("accesslog", None)
        self.cfg.set("timeout", 60)
        # Each broker its own: gunicorn's default control socket is one per user, shared by
        # every server that user runs.
        if "control_socket_disable" in self.cfg.settings:
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        return create_app(self.settings)


def run(settings: Settings) -> None:
    _Gunicorn(settings).run()
