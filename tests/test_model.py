"""ResNet18 through torchvision's weights API, from a fabricated hub cache."""

from __future__ import annotations

import pytest
import torch

from optsweep.errors import ConfigError, WeightsError
from optsweep.model import (
    _read_state_dict,
    build_model,
    cached_weights_path,
    check_weights_available,
)
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


# --- any torchvision classifier -------------------------------------------------------------------

import copy  # noqa: E402

import torchvision  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from optsweep.model import (  # noqa: E402
    MIN_IMAGE_SIZE,
    check_model,
    classifier_head,
    image_size_problem,
    model_names,
)
from optsweep.small_maps import lower_point_convs  # noqa: E402

# Run for real (CPU, from scratch) below this many parameters; larger ones are checked on the meta
# device (shapes only: the same errors for a too-small input, no memory, no arithmetic).
REAL_FORWARD_MAX_PARAMETERS = 15_000_000


def model_cfg(name: str, **extra):
    return OmegaConf.merge(make_cfg(["model.weights=null"]).model, {"name": name, **extra})


# 84M to 644M parameters: slow to build on the CPU (2.6 GB the largest), and the meta device cannot
# build RegNets (their widths are computed with tensors); the smaller RegNets run the same code.
TOO_BIG = {"regnet_y_128gf", "regnet_y_32gf", "regnet_x_32gf", "regnet_y_16gf"}
# what a forward on too small an image raises: torch's shape checks (RuntimeError), torchvision's
# own (ValueError, assert), as torch 2.14 and torchvision 0.29 raise them on every refused model
TOO_SMALL_ERRORS = (RuntimeError, ValueError, AssertionError)
ALL_MODELS = [pytest.param(name, marks=pytest.mark.skip(reason="too big to build in a test"))
              if name in TOO_BIG else name for name in model_names()]


def _meta_build(cfg, size: int, num_classes: int = 10):
    """``build_model`` on the meta device (shapes, no memory), on the CPU where it cannot be."""
    try:
        with torch.device("meta"):
            return build_model(cfg, num_classes, size)
    except NotImplementedError:
        return build_model(cfg, num_classes, size)


def _meta_forward(cfg, size: int) -> torch.Size:
    model = _meta_build(cfg, size).eval()
    device = next(model.parameters()).device
    with torch.inference_mode():
        return model(torch.empty(2, 3, size, size, device=device)).shape


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_torchvision_classifier_runs_at_32_and_64_or_is_refused_with_its_size(name):
    cfg = model_cfg(name)
    for size in (32, 64):
        problem = image_size_problem(cfg, size)
        if problem:
            with pytest.raises(ConfigError, match=f"data.image_size={size}.*{name}"):
                check_model(cfg, size)
            with pytest.raises(TOO_SMALL_ERRORS):  # the refusal is true: it would not run
                _meta_forward(cfg, size)
            continue
        check_model(cfg, size)
        parameters = sum(p.numel() for p in _meta_build(cfg, size).parameters())
        if parameters > REAL_FORWARD_MAX_PARAMETERS:
            assert _meta_forward(cfg, size) == (2, 10)
            continue
        torch.manual_seed(0)
        with torch.inference_mode():
            logits = build_model(cfg, 10, size).eval()(torch.randn(2, 3, size, size))
        assert logits.shape == (2, 10) and torch.isfinite(logits).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MIN_IMAGE_SIZE))
def test_minimum_sizes_are_the_probed_ones(name):
    cfg, size = model_cfg(name), MIN_IMAGE_SIZE[name]
    assert _meta_forward(cfg, size) == (2, 10)
    with pytest.raises(TOO_SMALL_ERRORS):
        _meta_forward(cfg, size - 1)
    assert image_size_problem(cfg, size - 1) == f"at least {size}"


def test_a_pretrained_vit_needs_its_own_size_and_one_from_scratch_a_multiple_of_its_patch():
    assert image_size_problem(model_cfg("vit_b_16", weights="IMAGENET1K_V1"), 32) == (
        "exactly 224 with model.weights=IMAGENET1K_V1 (the size it was built for)")
    assert image_size_problem(model_cfg("vit_b_16", weights="IMAGENET1K_SWAG_E2E_V1"), 224)
    assert image_size_problem(model_cfg("vit_b_16"), 48) is None
    assert image_size_problem(model_cfg("maxvit_t"), 224) is None
    assert _meta_forward(model_cfg("maxvit_t"), 224) == (2, 10)
    assert "multiple of 16" in image_size_problem(model_cfg("vit_b_16"), 40)
    assert image_size_problem(model_cfg("alexnet", weights="IMAGENET1K_V1"), 32) == (
        "at least 63 with model.weights=IMAGENET1K_V1")


def test_unknown_model_name_is_one_line_listing_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        check_model(model_cfg("resnet19"), 32)
    message = str(info.value)
    assert message.startswith("model.name='resnet19'") and "\n" not in message
    assert "resnet18" in message and "vit_b_16" in message and "convnext_tiny" in message


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_MODELS)
def test_freeze_backbone_trains_only_the_new_head_in_every_family(name):
    model = _meta_build(model_cfg(name, freeze_backbone=True), 224, num_classes=7)
    _, _, head = classifier_head_of(model, 7)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in head.parameters()} and trainable


def classifier_head_of(model, num_classes):
    """The new head: the last layer with ``num_classes`` outputs (classifier_head finds 1000s)."""
    found = None
    for parent in model.modules():
        for name, child in parent.named_children():
            if getattr(child, "out_features", None) == num_classes or getattr(
                    child, "out_channels", None) == num_classes:
                found = (parent, name, child)
    return found


def test_classifier_head_is_found_in_each_family():
    expected = {"resnet18": "fc", "mobilenet_v3_small": "3", "vit_b_16": "head",
                "swin_t": "head", "squeezenet1_0": "1", "convnext_tiny": "2"}
    for name, attribute in expected.items():
        with torch.device("meta"):
            model = torchvision.models.get_model(name, weights=None)
        assert classifier_head(model)[1] == attribute, name


def test_cifar_stem_is_a_3x3_stride_1_convolution_without_max_pool():
    model = build_model(model_cfg("resnet18", cifar_stem=True), 10, 32)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    with pytest.raises(ConfigError, match="model.cifar_stem"):
        check_model(model_cfg("mobilenet_v3_small", cifar_stem=True), 32)


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_b0", "regnet_x_400mf",
                                  "convnext_tiny", "swin_t", "vit_b_32"])
def test_fast_path_convolutions_compute_what_the_model_does(name):
    torch.manual_seed(0)
    model = build_model(model_cfg(name), 10, 32).eval()
    fast = lower_point_convs(copy.deepcopy(model))
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-5)
