"""optsweep's Optuna sweeper, where Hydra looks for sweepers (see optsweep_optuna_sweeper.py)."""
