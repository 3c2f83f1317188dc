"""Optimizers: every class a study may name, each built and stepped the way its authors intend.

- ``build``: the YAML (``conf/optimizer/<name>.yaml``: ``_target_`` and every argument) to an
  optimizer over the model's parameters, optsweep's own keys folded in;
- ``adapters``: the protocol a family needs (Schedule-Free's train/eval and batch-norm
  recalibration, LBFGS's closure, Prodigy's step-size estimate), the training loop's only contact;
- ``muon``: Muon on the hidden matrices and AdamW on the rest, as Keller Jordan's recipe runs it;
- ``check``: what cannot work, refused in one line before any data is read;
- ``packages``: whether an optimizer's package is installed, asked without importing it or torch.

Adding an optimizer is adding one YAML file; a class of the user's own works the same way
(``_target_: mypackage.MyOptimizer``), with no change here.

Import from the modules (``from optsweep.optim.build import build_adapter``): this package's own
import loads nothing, so that asking ``packages`` loads no torch.
"""
