"""Benchmarks with budgets for voicecoach (``scripts/bench``; method and figures in BENCHMARKS.md).

Bench code lives here, outside ``src/``, so the package ships none of it. Each module measures one figure
family and returns a JSON-ready dict; :mod:`benchlib.cli` runs them, prints the table, checks the budgets.
Everything runs on 127.0.0.1 against the local Realtime server (:mod:`benchlib.serverproc`).
"""
