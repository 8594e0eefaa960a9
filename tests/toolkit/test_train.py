"""Training behaviour on tiny in-memory data: determinism, augmentation scope, early stopping, options."""
import pytest
import torch

import toolkit.train as train_module
from toolkit.config import make_config
from toolkit.data import Cifar10
from toolkit.models import CIFAR10_CLASSES
from toolkit.train import train


def _tiny_cifar(n_train: int = 320, n_test: int = 64) -> Cifar10:
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 10, (n_train,), generator=g)
    images = torch.randint(0, 256, (n_train, 3, 32, 32), dtype=torch.uint8, generator=g)
    # make the task learnable: brightness of the red plane encodes the label
    images[:, 0] = (labels.view(-1, 1, 1) * 25).to(torch.uint8)
    test_labels = torch.randint(0, 10, (n_test,), generator=g)
    test_images = torch.randint(0, 256, (n_test, 3, 32, 32), dtype=torch.uint8, generator=g)
    test_images[:, 0] = (test_labels.view(-1, 1, 1) * 25).to(torch.uint8)
    return Cifar10(images, labels, test_images, test_labels, CIFAR10_CLASSES)


def test_same_seed_same_weights_on_cpu():
    data = _tiny_cifar()
    cfg = make_config("task2", epochs=2, batch_size=32, augment=True, seed=3)
    a, b = train(cfg, data), train(cfg, data)
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]


def test_augmentation_only_on_the_training_part(monkeypatch):
    calls = []
    real = train_module.iterate_batches

    def spy(images, labels, **kwargs):
        calls.append((len(labels), kwargs.get("augment", False), kwargs["shuffle"]))
        return real(images, labels, **kwargs)

    monkeypatch.setattr(train_module, "iterate_batches", spy)
    data = _tiny_cifar()
    train(make_config("task2", epochs=1, batch_size=32, augment=True), data)
    augmented = [c for c in calls if c[1]]
    assert augmented and all(n == 288 and shuffle for n, _, shuffle in augmented)  # 90% of 320: training part
    assert all(not aug for n, aug, _ in calls if n in (32, 64))  # validation (10%) and test never augmented


def test_metrics_and_history_fields():
    result = train(make_config("net1", epochs=2, batch_size=32, lr=0.01), _tiny_cifar())
    m = result.metrics
    for key in ("model", "epochs_run", "train_accuracy", "val_accuracy", "test_accuracy", "train_loss", "history"):
        assert key in m
    assert m["epochs_run"] == 2 and len(m["history"]) == 2
    for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
        assert key in m["history"][0]
    assert not result.model.training


def _script_validation_losses(monkeypatch, losses: list[float]) -> list[dict[str, torch.Tensor]]:
    """Make the validation part (32 images) report ``losses`` in turn; returns the weights seen at each
    validation (the last call is the final evaluation of the kept weights)."""
    scripted = iter(losses)
    states: list[dict[str, torch.Tensor]] = []
    real_evaluate = train_module.evaluate

    def fake_evaluate(model, images, labels, **kw):
        if len(labels) == 32:  # the validation part during training
            states.append({k: v.clone() for k, v in model.state_dict().items()})
            return next(scripted), 0.5
        return real_evaluate(model, images, labels, **kw)

    monkeypatch.setattr(train_module, "evaluate", fake_evaluate)
    return states


def test_early_stopping_keeps_the_best_weights(monkeypatch):
    # validation losses: improve, then get worse for `patience` epochs -> stop, restore epoch 2's weights
    states = _script_validation_losses(monkeypatch, [2.0, 1.0, 1.5, 1.6, 1.7, 1.8])
    result = train(make_config("task2", epochs=10, batch_size=32, patience=2), _tiny_cifar())
    assert result.metrics["epochs_run"] == 4 and result.metrics["best_epoch"] == 2
    assert result.metrics["kept_epoch"] == 2
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, states[1][key]), key


def test_without_early_stopping_the_last_epoch_is_kept_whatever_the_best(monkeypatch):
    # epoch 2 is best, but without early stopping epoch 3's weights are the result (the 4th loss: final eval)
    states = _script_validation_losses(monkeypatch, [2.0, 1.0, 1.5, 1.5])
    result = train(make_config("task2", epochs=3, batch_size=32, early_stopping=False), _tiny_cifar())
    assert (result.metrics["best_epoch"], result.metrics["kept_epoch"]) == (2, 3)
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, states[2][key]), key


def test_step_schedule_and_optimizer_options():
    result = train(make_config("task2", epochs=3, batch_size=64, optimizer="adam", lr=1e-3, step_size=1,
                               gamma=0.5, early_stopping=False, weight_decay=1e-4, init="xavier"),
                   _tiny_cifar())
    assert [h["lr"] for h in result.history] == pytest.approx([1e-3, 5e-4, 2.5e-4])


def test_learns_a_learnable_task():
    result = train(make_config("task2", epochs=4, batch_size=32, optimizer="adam", lr=1e-3,
                               early_stopping=False), _tiny_cifar())
    assert result.metrics["test_accuracy"] > 0.5  # chance is 0.1


def test_frozen_backbone_trains_only_the_head_and_keeps_its_batchnorm_statistics():
    data = _tiny_cifar(n_train=40, n_test=8)
    cfg = make_config("resnet18", weights="none", freeze_backbone=True, image_size=32, epochs=1, batch_size=16,
                      lr=1e-3)
    torch.manual_seed(cfg.seed)
    before = train_module.build_model(cfg)[0].state_dict()  # same seed: the weights training starts from
    after = train(cfg, data).model.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["fc.bias", "fc.weight"]  # running_mean/var of every backbone BN untouched too


@pytest.mark.parametrize("scheme, conv0_std", [("he", (2 / 75) ** 0.5), ("normal", 0.05),
                                               ("xavier", (2 / (75 + 800)) ** 0.5), ("kaiming", (1 / 225) ** 0.5)])
def test_init_schemes_set_the_weight_scale_they_name(scheme, conv0_std):
    model, _ = train_module.build_model(make_config("task2", init=scheme))
    conv = model.features[0]  # Conv(3 -> 32, 5x5): fan_in 75, fan_out 800
    assert abs(conv.weight.std().item() - conv0_std) < 0.1 * conv0_std
    if scheme != "kaiming":
        assert torch.count_nonzero(conv.bias) == 0
