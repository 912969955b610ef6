"""Benchmarks of the store, each side by side with a hand-written floor.

``python -m bench --quick`` (CI) or ``python -m bench`` (a person, minutes): see
:mod:`bench.__main__` and ``docs/performance.md``. The floor
(:mod:`bench.floor`) runs the same statements on the bare drivers, so the figure
that matters is the ratio, which holds on a noisy machine.
"""
