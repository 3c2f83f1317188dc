"""Overrides as text: the key and value every reader takes from them."""
import pytest

from optsweep.overrides import override_key, split_override


@pytest.mark.parametrize("override, written, value, key", [
    ("optimizer.lr=0.1", "optimizer.lr", "0.1", "optimizer.lr"),
    ("+trainer.extra=1", "+trainer.extra", "1", "trainer.extra"),
    ("++hydra.job.chdir=false", "++hydra.job.chdir", "false", "hydra.job.chdir"),
    ("~optimizer.betas", "~optimizer.betas", None, "optimizer.betas"),
    ("data.root=/a=b", "data.root", "/a=b", "data.root"),  # the first = splits
    ("optimizer.lr=", "optimizer.lr", "", "optimizer.lr"),  # empty, not missing
])
def test_an_override_splits_on_its_first_equals_and_its_key_loses_hydras_prefix(
        override, written, value, key):
    assert split_override(override) == (written, value)
    assert override_key(override) == key
