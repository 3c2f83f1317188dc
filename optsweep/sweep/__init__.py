"""Sweeps: what optsweep adds to Hydra's multirun and hydra-optuna-sweeper.

- ``job.sweep_job``: one multirun job; a failure becomes a recorded result, never the sweep's end.
- ``callbacks.SweepSummary``: guards a named sweep directory against a different command, then
  prints and writes the sweep's summary and makes the command exit non-zero when a job failed.
- ``hydra_plugins.optsweep_sweeper.optsweep_optuna_sweeper.OptunaSweeper`` (Hydra only loads
  sweepers from ``hydra_plugins``): the Optuna sweeper with pruning, a persistent ``n_trials``,
  resumed trials and exact trial counts across workers; its work is in ``_optuna_impl``.
- ``pruning``: how a job finds its Optuna trial and reports each epoch to it.
- ``storage``: opening an Optuna storage with one clear error, and the lock that serialises asks.
"""
