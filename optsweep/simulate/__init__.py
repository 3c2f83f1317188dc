"""The simulated workload (``workload=simulated``): a stand-in for training with a known truth.

``model`` holds the maths (a setting's expected accuracy, its curve, noise and truth: pure
functions of the ``simulate`` config), ``task`` runs one run directory from it as training would.
Torch-free: ``optsweep.dispatch`` picks this task before any training module is imported.
"""
