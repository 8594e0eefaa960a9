import pytest
import torch

from toolkit.errors import ConfigError
from toolkit.models import get_model, get_model_spec, list_models, register_model
from toolkit.summary import conv_output_size, summarize


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_task2_has_the_seed_parameter_count():
    model = get_model("task2")
    assert _params(model) == 390_410
    counts = [r.params for r in summarize(model, (3, 32, 32)) if r.params]
    assert counts == [2_432, 51_264, 204_928, 131_136, 650]


def test_task2_layer_shapes_and_logits():
    rows = summarize(get_model("task2"), (3, 32, 32))
    shapes = [r.output_shape for r in rows if r.kind in ("MaxPool2d", "Linear")]
    assert shapes == [(32, 16, 16), (64, 8, 8), (128, 4, 4), (64,), (10,)]
    assert rows[-1].kind == "Linear"  # raw logits: no activation after the last Dense


@pytest.mark.parametrize("name, bn_count, convs", [("net1", 4, 3), ("net2", 7, 6)])
def test_batchnorm_networks_put_batchnorm_after_relu(name, bn_count, convs):
    model = get_model(name)
    mods = [m for m in model.modules() if not list(m.children())]
    kinds = [type(m).__name__ for m in mods]
    assert sum(k.startswith("BatchNorm") for k in kinds) == bn_count
    assert kinds.count("Conv2d") == convs
    for i, kind in enumerate(kinds):
        if kind.startswith("BatchNorm"):
            assert kinds[i - 1] == "ReLU"
    before = [type(m).__name__ for m in get_model(name, bn_before_relu=True).modules() if not list(m.children())]
    for i, kind in enumerate(before):
        if kind.startswith("BatchNorm"):
            assert before[i - 1] in ("Conv2d", "Linear")


def test_no_batchnorm_and_activation_options():
    model = get_model("net2", batchnorm=False, activation="elu", dropout=0.5)
    kinds = {type(m).__name__ for m in model.modules()}
    assert "BatchNorm2d" not in kinds and "ELU" in kinds and "Dropout" in kinds
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_unknown_model_lists_known_names():
    with pytest.raises(ConfigError, match="unknown model 'vgg'.*task2"):
        get_model_spec("vgg")
    assert {"task2", "net1", "net2", "resnet18"} <= set(list_models())


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model("task2")(lambda: torch.nn.Identity())


@pytest.mark.parametrize("size, kernel, padding, stride, expected", [
    (32, 5, 2, 1, 32),    # a 5x5 kernel keeps the size with padding 2
    (512, 9, 0, 1, 504),  # 512 -> 504 needs a 9x9 kernel
    (504, 2, 0, 2, 252),  # 2x2 pooling with stride 2
    (252, 3, 0, 1, 250),  # a following 3x3 convolution
])
def test_output_size_arithmetic(size, kernel, padding, stride, expected):
    assert conv_output_size(size, kernel, padding, stride) == expected


def test_output_size_refuses_uneven_tiling():
    with pytest.raises(ConfigError, match="does not tile"):
        conv_output_size(33, 2, 0, 2)
