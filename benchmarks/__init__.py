"""Benchmarks and the load test: run from a clone, not part of the installed package.

    python -m benchmarks                      # the whole benchmark (docs/benchmark.md)
    python -m benchmarks --quick --skip-app   # a smoke run: generator, designs, cold start
    python -m benchmarks.generator_latency    # generator designs against the reference unet_256
    python -m benchmarks.load_test            # concurrent clients against app.py
    python -m benchmarks.live_update          # the live preview: one update, 8 drawers at once
    python -m benchmarks.gfpgan_stage         # the GFPGAN stage, stock against optimised
    python -m benchmarks.photo_uploads        # colour photos uploaded instead of sketches (needs the data set)

``python -m benchmarks`` runs all but photo_uploads (load_test, live_update and gfpgan_stage unless --skip-app).
"""
