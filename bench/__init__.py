"""Benchmarks of fedbroker's policy engine against cedarpy and moto (see bench/README.md).

Run ``scripts/bench.sh``. Not a test package: pytest collects only ``tests/``.
"""
