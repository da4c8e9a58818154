"""The examples run against a real broker: the same fixtures as the API tests."""

from tests.web.conftest import broker, iam, unique

__all__ = ["broker", "iam", "unique"]
