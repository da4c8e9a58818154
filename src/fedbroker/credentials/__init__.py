"""Credentials: master key, sealing, passwords, SigV4, the per-use check."""
