"""Helpers shared by test packages: databases and servers the tests start themselves."""
