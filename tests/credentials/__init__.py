"""Tests for fedbroker.credentials."""
