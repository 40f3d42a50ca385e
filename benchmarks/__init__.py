"""Benchmarks of sardana-redis (``make bench`` = ``python -m benchmarks``); see docs/reports/performance.md."""
