"""Audit: CloudTrail-shaped events for every call and decision, to an append-only sink."""
