"""The test app as many apps are written: no ``if __name__ == "__main__":`` guard. A slot's
worker process must not run this file again (multiprocessing's spawn would: a Hydra run inside
the worker, which dies there), as Hydra's joblib launcher does not."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="task")
def main(cfg: DictConfig) -> float:
    return (float(cfg.x) - 1.0) ** 2


main()
