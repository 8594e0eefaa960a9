"""fold_batchnorm: exact folds backward and forward, kept BNs with reasons, refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from exporters import FoldError, fold_batchnorm
from tiny_models import conv_bn_mlp, network1  # on sys.path under pytest


def _max_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    a_mode, b_mode = a.training, b.training
    a.eval(), b.eval()
    with torch.no_grad():
        diff = float((a(x) - b(x)).abs().max())
    a.train(a_mode), b.train(b_mode)
    return diff


def _bn_count(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@pytest.mark.parametrize("conv_bias", [True, False])
def test_conv_bn_relu_flatten_linear_bn1d_linear_folds_exactly(randomize, conv_bias):
    torch.manual_seed(0)
    model = conv_bn_mlp(conv_bias)
    randomize(model)
    folded, report = fold_batchnorm(model)
    assert [(e.bn, e.into, e.direction) for e in report.folded] == [("1", "0", "backward"), ("5", "4", "backward")]
    assert report.kept == [] and _bn_count(folded) == 0
    assert folded[0].bias is not None  # a conv without bias gains one
    assert _max_diff(model, folded, torch.randn(5, 3, 8, 8)) < 1e-5


@pytest.mark.parametrize("conv_bias", [True, False])
def test_folded_conv_bias_is_scale_times_bias_minus_mean_plus_beta(conv_bias):
    torch.manual_seed(1)
    conv, bn = nn.Conv2d(3, 8, 3, bias=conv_bias), nn.BatchNorm2d(8)
    with torch.no_grad():
        if conv_bias:
            conv.bias.uniform_(0.5, 1.5)  # clearly non-zero
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-1, 1)
    model = nn.Sequential(conv, bn)
    folded, _ = fold_batchnorm(model)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv_b = conv.bias if conv_bias else torch.zeros(8)
    expected_bias = scale * (conv_b - bn.running_mean) + bn.bias
    assert torch.allclose(folded[0].bias, expected_bias, atol=1e-6)
    assert torch.allclose(folded[0].weight, conv.weight * scale.view(-1, 1, 1, 1), atol=1e-6)
    assert isinstance(folded[1], nn.Identity)
    assert _max_diff(model, folded, torch.randn(4, 3, 10, 10)) < 1e-5


@pytest.mark.parametrize(
    "model, x",
    [
        (nn.Sequential(nn.Linear(10, 20), nn.BatchNorm1d(20, affine=False)), torch.randn(6, 10)),
        (nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8, affine=False)), torch.randn(3, 3, 9, 9)),
    ],
    ids=["linear-bn1d", "conv-bn2d"],
)
def test_affine_false_batchnorm_folds_with_custom_stats(model, x):
    torch.manual_seed(2)
    bn = model[1]
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    folded, report = fold_batchnorm(model, input_size=tuple(x.shape[1:]))
    assert [e.bn for e in report.folded] == ["1"]
    # without affine parameters the BatchNorm's weight is 1 and its bias 0: scale = 1/sqrt(var + eps)
    layer, scale = model[0], 1.0 / torch.sqrt(bn.running_var + bn.eps)
    shape = (-1,) + (1,) * (layer.weight.dim() - 1)
    assert torch.allclose(folded[0].weight, layer.weight * scale.view(shape), atol=1e-6)
    assert torch.allclose(folded[0].bias, scale * (layer.bias - bn.running_mean), atol=1e-6)
    assert isinstance(folded[1], nn.Identity)
    assert _max_diff(model, folded, x) < 1e-5


def test_linear_then_bn1d_without_input_size_is_kept_for_want_of_the_rank():
    """Linear(10, 20) might see (N, 20, 10): without a shape or a flatten before it, its rank is unknown."""
    model = nn.Sequential(nn.Linear(10, 20), nn.BatchNorm1d(20))
    folded, report = fold_batchnorm(model)
    assert report.folded == [] and "shape unknown: pass input_size" in report.kept[0].reason
    assert _max_diff(model, folded, torch.randn(6, 10)) == 0.0


def test_caller_model_keeps_its_weights_and_train_mode(randomize):
    model = randomize(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded, _ = fold_batchnorm(model)
    assert model.training and not folded.training
    assert isinstance(model[1], nn.BatchNorm2d)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_batchnorm_without_running_stats_raises_fold_error_naming_it():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8, track_running_stats=False))
    with pytest.raises(FoldError, match=r"BatchNorm '1' has no running statistics.*other images of the batch"):
        fold_batchnorm(model)


def test_network1_positive_scale_folds_forward_where_exact(randomize):
    torch.manual_seed(3)
    model = randomize(network1(blocks=2), positive_scale=True)
    folded, report = fold_batchnorm(model, input_size=(3, 16, 16))
    entries = {e.bn: e for e in report.entries}
    assert entries["2"].action == "kept"
    assert "zero padding of 4 breaks the equivalence" in entries["2"].reason
    assert (entries["6"].action, entries["6"].into, entries["6"].direction) == ("folded", "9", "forward")
    assert (entries["11"].action, entries["11"].into, entries["11"].direction) == ("folded", "12", "forward")
    assert _max_diff(model, folded, torch.randn(4, 3, 16, 16)) < 1e-5


def test_network1_negative_scale_keeps_bn_before_maxpool_naming_channels(randomize):
    torch.manual_seed(4)
    model = randomize(network1(blocks=2))
    with torch.no_grad():
        model[6].weight.abs_().add_(0.1)
        model[6].weight[[1, 5]] *= -1  # channels 1 and 5 now have a negative scale
        model[11].weight.copy_(-model[11].weight.abs())  # a Linear follows directly: any sign folds
    folded, report = fold_batchnorm(model, input_size=(3, 16, 16))
    entries = {e.bn: e for e in report.entries}
    assert entries["6"].action == "kept"
    assert "7 (MaxPool2d)" in entries["6"].reason and "channels [1, 5] have non-positive scale" in entries["6"].reason
    assert (entries["11"].action, entries["11"].into) == ("folded", "12")
    assert _max_diff(model, folded, torch.randn(4, 3, 16, 16)) < 1e-5
    assert {e["bn"] for e in report.to_dict()["kept"]} == {"2", "6"}
    assert "kept   6:" in str(report) and "folded 11 forward into 12" in str(report)


class _ViewNet(nn.Module):
    """ReLU -> BN -> x.view(x.size(0), -1) -> Linear, and a BN folding forward into a grouped conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, groups=2)  # no padding: the forward fold is exact
        self.bn2 = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(torch.relu(self.conv1(x)))
        x = self.bn2(torch.relu(self.conv2(x)))
        return self.fc(x.view(x.size(0), -1))


def test_forward_fold_through_view_and_into_grouped_conv(randomize):
    torch.manual_seed(5)
    model = randomize(_ViewNet())
    folded, report = fold_batchnorm(model)
    assert [(e.bn, e.into, e.direction) for e in report.folded] == [
        ("bn1", "conv2", "forward"),
        ("bn2", "fc", "forward"),
    ]
    assert _max_diff(model, folded, torch.randn(3, 4, 6, 6)) < 1e-5


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: symbolic tracing cannot follow it
            x = -x
        return self.bn(self.conv(x))


def test_untraceable_model_keeps_every_bn_with_the_reason():
    folded, report = fold_batchnorm(_Untraceable())
    assert [(e.bn, e.action) for e in report.entries] == [("bn", "kept")]
    assert report.kept[0].reason.startswith("model could not be traced: ")
    assert isinstance(folded.bn, nn.BatchNorm2d)


class _SharedOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y  # the conv output is used twice: folding would change the skip path


def test_conv_output_used_elsewhere_is_not_folded(randomize):
    model = randomize(_SharedOutput())
    folded, report = fold_batchnorm(model)
    assert report.folded == []
    assert "the output of conv is also used by other ops" in report.kept[0].reason
    assert _max_diff(model, folded, torch.randn(2, 3, 7, 7)) == 0.0
