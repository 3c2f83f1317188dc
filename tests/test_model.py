"""ResNet18 through torchvision's weights API, from a fabricated hub cache."""

from __future__ import annotations

import pytest
import torch

from optsweep.errors import ConfigError, WeightsError
from optsweep.model import _read_state_dict, build_model, cached_weights_path, check_weights_available
from tests import fakes
from tests.conftest import make_cfg


@pytest.fixture(autouse=True)
def _fresh_cache():
    _read_state_dict.cache_clear()
    yield
    _read_state_dict.cache_clear()


def test_imagenet_weights_load_from_the_hub_cache(cached_weights):
    _, written = fakes.write_resnet18_weights(cached_weights)
    model = build_model(make_cfg().model, num_classes=100)
    assert model.fc.out_features == 100 and model.fc.in_features == 512
    state = model.state_dict()
    for key in ("conv1.weight", "layer4.1.bn2.running_var"):
        assert torch.equal(state[key], written[key])


def test_random_init_has_no_weights_to_find(tmp_path, monkeypatch, no_network):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    model = build_model(make_cfg(["model.weights=null"]).model, num_classes=10)
    assert model.fc.out_features == 10


def test_weights_not_cached_offline_name_the_cache_and_the_way_out(tmp_path, monkeypatch,
                                                                  no_network):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    with pytest.raises(WeightsError) as info:
        check_weights_available(make_cfg().model)
    import torchvision

    expected = cached_weights_path(torchvision.models.ResNet18_Weights.IMAGENET1K_V1)
    assert expected in str(info.value) and "model.weights=null" in str(info.value)


def test_unknown_weights_name_lists_the_choices():
    with pytest.raises(ConfigError, match="IMAGENET1K_V1"):
        check_weights_available(make_cfg(["model.weights=IMAGENET9K"]).model)


def test_freeze_backbone_trains_only_the_new_fc():
    model = build_model(make_cfg(["model.weights=null", "model.freeze_backbone=true"]).model, 10)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["fc.weight", "fc.bias"]
