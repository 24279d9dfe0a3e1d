"""Benchmarks: `make bench` runs them and writes bench/results.json (figure name -> value)."""
