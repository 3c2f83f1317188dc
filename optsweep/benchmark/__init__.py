"""The optimizer benchmark (``python -m optsweep.benchmark``): the same tuning budget for every
optimizer, the chosen settings confirmed over new seeds, the answer ranked across workloads.

``settings`` reads the protocol (``conf/benchmark/``), ``plan`` names each step's command and
what is done, ``preflight`` checks every cell before anything trains; the analysis of a
benchmark folder lives with the rest of the analysis (``optsweep.analysis.benchmark``).
"""
