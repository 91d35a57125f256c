"""Benchmarks and the load test: run from a clone, not part of the installed package.

    python -m benchmarks                      # the whole benchmark (docs/benchmark.md)
    python -m benchmarks --quick --skip-app   # a smoke run of the generator and cold start
    python -m benchmarks.load_test            # concurrent clients against app.py
    python -m benchmarks.gfpgan_stage         # the GFPGAN stage, stock against optimised
"""
