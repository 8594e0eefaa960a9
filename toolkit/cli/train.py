"""`toolkit train`: the study's recipe per model, every option it explored."""
from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from toolkit.cli import cli, console, handle_errors


def _progress_callback(progress: Progress):  # type: ignore[no-untyped-def]
    tasks: dict[int, int] = {}

    def on_progress(event) -> None:  # type: ignore[no-untyped-def]
        progress.start()  # at the first step: an error before training (options, data) stays one line
        if event.epoch not in tasks:
            tasks[event.epoch] = progress.add_task(f"epoch {event.epoch}/{event.epochs}", total=event.steps,
                                                   loss=event.loss)
        task = tasks[event.epoch]
        progress.update(task, completed=event.step, loss=event.loss)
        if event.epoch_done and event.record:
            r = event.record
            line = (f"epoch {event.epoch}/{event.epochs}: train loss {r['train_loss']:.4f}, val loss "
                    f"{r['val_loss']:.4f}, val acc {r['val_accuracy']:.4f}, lr {r['lr']:g}, {r['seconds']:.0f} s")
            progress.update(task, description=f"epoch {event.epoch}/{event.epochs} done")
            progress.console.print(line, highlight=False)  # a lasting line, also when output is a log file

    return on_progress


@cli.command()
@click.option("--model", "model_name", default="task2", show_default=True, help="Registry name: task2, net1, net2, resnet18.")
@click.option("--epochs", type=int, help="At most this many epochs (recipe default otherwise).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None, help="Run directory [default: runs/MODEL].")
@click.option("--data", type=click.Path(path_type=Path), default=None, help="CIFAR-10 tarball or folder (else $TOOLKIT_DATA, else the cache).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]))
@click.option("--lr", type=float, help="Initial learning rate.")
@click.option("--momentum", type=float, help="SGD momentum.")
@click.option("--batch-size", type=int)
@click.option("--step-size", type=int, help="Multiply the learning rate by --gamma every N epochs.")
@click.option("--gamma", type=float, help="Learning-rate factor of the step schedule.")
@click.option("--early-stopping/--no-early-stopping", default=None, help="Stop when validation loss stalls; keep the best weights.")
@click.option("--patience", type=int, help="Epochs without validation-loss improvement before stopping.")
@click.option("--weight-decay", type=float, help="L2 regularization.")
@click.option("--dropout", type=float, help="Dropout before the last Dense layer.")
@click.option("--init", type=click.Choice(["kaiming", "he", "xavier", "normal"]),
              help="Weight init: kaiming (torch's default), he (He normal), xavier, normal (std 0.05).")
@click.option("--activation", type=click.Choice(["relu", "elu", "leaky_relu", "sigmoid", "tanh"]))
@click.option("--no-batchnorm", is_flag=True, help="Build net1/net2 without BatchNorm.")
@click.option("--bn-before-relu", is_flag=True, help="Conv -> BatchNorm -> ReLU (every BatchNorm folds).")
@click.option("--augment", is_flag=True, help="Random crop (pad 4) + horizontal flip on the training part only.")
@click.option("--image-size", type=int, help="Input size (resnet18: 224 as in the study; smaller on CPU).")
@click.option("--weights", help="resnet18: imagenet | none | PATH to a state dict.")
@click.option("--freeze-backbone", is_flag=True, help="resnet18: train only the new head.")
@click.option("--train-subset", type=int, help="Train on the first N training images only (quick runs).")
@click.option("--threads", type=int, help="torch intra-op threads.")
@handle_errors
def train(model_name: str, out_dir: Path | None, data: Path | None, no_batchnorm: bool, **options: object) -> None:
    """Train a CIFAR-10 classifier; write checkpoint.pt and metrics.json to the run directory."""
    from toolkit.runs import train_run

    options["batchnorm"] = False if no_batchnorm else None
    options["bn_before_relu"] = options["bn_before_relu"] or None
    options["augment"] = options["augment"] or None
    options["freeze_backbone"] = options["freeze_backbone"] or None
    out_dir = out_dir or Path("runs") / model_name
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TimeRemainingColumn())
    progress = Progress(*columns, console=console)
    try:
        result = train_run(model_name, out_dir, data=data, on_progress=_progress_callback(progress), **options)
    finally:
        if progress.live.is_started:  # a display never started must not print its closing blank line
            progress.stop()
    m = result.metrics
    console.print(f"[bold]{model_name}[/]: {m['epochs_run']} epoch{'' if m['epochs_run'] == 1 else 's'}, train {m['train_accuracy']:.4f} / "
                  f"val {m['val_accuracy']:.4f} / test {m['test_accuracy']:.4f} accuracy")
    console.print(f"wrote {out_dir / 'checkpoint.pt'} and {out_dir / 'metrics.json'}")

