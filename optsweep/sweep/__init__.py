"""Sweeps: what optsweep adds to Hydra's multirun, and its Optuna sweeper.

- ``job.sweep_job``: one multirun job; a failure becomes a recorded result, never the sweep's end;
  inside an Optuna sweep it reports every epoch and answers in the sweeper's terms (COMPLETE,
  PRUNED, FAIL).
- ``preflight``: a cause every job would share, said once before launching.
- ``callbacks.SweepSummary``: guards a named sweep directory against a different command, then
  prints and writes the sweep's summary and makes the command exit non-zero when a job failed.
- ``hydra_plugins.optsweep_sweeper.optsweep_optuna_sweeper.OptunaSweeper`` (Hydra only loads
  sweepers from ``hydra_plugins``): an Optuna sweeper for any Hydra app, configured as
  hydra-optuna-sweeper 1.3, plus pruning, a persistent ``n_trials``, resumed trials and exact trial
  counts across workers. Its schema is ``optuna_config``, its work ``_optuna_impl`` (with
  ``search_space`` for ``hydra.sweeper.params``), and ``_optuna_private`` holds the little it needs
  beyond Optuna's public API.
- ``trial``: ``report(value, step)`` and ``current_trial()`` for a task inside such a sweep.
- ``slots``: how that sweeper runs trials: slots (a trial's end starts the next) or batches;
  ``runners``: the submit-and-poll runners behind the slots (in process, a process pool, submitit).
- ``storage``: naming and opening an Optuna storage with one clear error, the lock that serialises
  asks, and what a trial's job beat records (its liveness rules are ``optsweep.lease``).
"""
