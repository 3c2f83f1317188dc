"""optsweep: cheap, correct and reproducible optimizer studies on image classifiers."""

__version__ = "0.1.0"
