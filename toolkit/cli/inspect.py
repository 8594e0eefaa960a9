"""Commands that look at models and runs: summary, predict, report, plot, activations."""
from __future__ import annotations

import warnings
from pathlib import Path

import click
import numpy as np
from rich.table import Table

from toolkit.cli import cli, console, handle_errors


@cli.command()
@click.option("--model", "model_name", required=True, help="Registry name.")
@click.option("--input-size", nargs=2, type=click.IntRange(min=1), help="H W [default: the model's].")
@handle_errors
def summary(model_name: str, input_size: tuple[int, int] | None) -> None:
    """Per layer: output shape and parameter count, then the total."""
    from toolkit.models import get_model, get_model_spec
    from toolkit.summary import summarize

    spec = get_model_spec(model_name)
    size = (spec.input_size[0], *input_size) if input_size else spec.input_size
    kwargs = {spec.size_arg: size[1]} if input_size and spec.size_arg else {}
    with warnings.catch_warnings():  # a size too small builds zero-element layers; summarize says so in one line
        warnings.simplefilter("ignore", UserWarning)
        model = get_model(model_name, **kwargs)
    rows = summarize(model, size)
    table = Table(title=f"{model_name}, input {size}")
    for col, justify in (("layer", "left"), ("type", "left"), ("output shape", "left"), ("parameters", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(row.name, row.kind, str(row.output_shape), f"{row.params:,}")
    table.add_section()
    table.add_row("total", "", "", f"{sum(r.params for r in rows):,}")
    console.print(table)


@cli.command()
@click.argument("model_path", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--provider", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True,
              help="Classes shown per image (at most the model's class count).")
@handle_errors
def predict(model_path: Path, images: tuple[Path, ...], provider: str, top: int) -> None:
    """Classify photos with an exported model, through the runtime only (no torch)."""
    from runtime import Session
    from toolkit.images import read_image

    session = Session(model_path, provider=provider)
    arrays = [read_image(p) for p in images]
    logits = session.run(session.preprocess(arrays))  # (N, K)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    classes = session.metadata.classes
    table = Table(title=f"{model_path.name} on {', '.join(session.providers_active)}")
    table.add_column("image")
    table.add_column("prediction")
    top = min(top, len(classes))
    table.add_column(f"top {top}")
    for path, p in zip(images, probs):
        order = np.argsort(-p)[:top]
        table.add_row(str(path), classes[order[0]], ", ".join(f"{classes[i]} {p[i]:.2f}" for i in order))
    console.print(table)


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--markdown", "markdown_path", type=click.Path(path_type=Path), help="Write the Markdown table (always printed after the terminal table) to this file too.")
@click.option("--study/--no-study", default=True, show_default=True,
              help="Show the study's reported numbers beside the first run of each model.")
@handle_errors
def report(run_dirs: tuple[Path, ...], markdown_path: Path | None, study: bool) -> None:
    """Training loss and train / validation / test accuracy per run (Table 4), beside the study's, with the
    ONNX validation of each run exported into its folder (RUN_DIR/model.onnx, or the one RUN_DIR/*.onnx)."""
    from toolkit.fileio import write_atomic
    from toolkit.report import COLUMNS, report_rows, to_markdown
    from toolkit.runs import load_export_report, load_run

    rows = report_rows([(d.name, load_run(d)) for d in run_dirs], study=study,
                       exports=[load_export_report(d) for d in run_dirs])
    table = Table(title="Results")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("run", "model", "setup") else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    markdown = to_markdown(rows)
    if markdown_path:
        write_atomic(markdown_path, lambda f: f.write(markdown.encode()))
    console.print(markdown, highlight=False, markup=False, soft_wrap=True)  # one table row a line


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="PNG file.")
@click.option("--label", "labels", multiple=True, help="Curve label per run [default: the run folder name].")
@click.option("--title", help="Figure title.")
@handle_errors
def plot(run_dirs: tuple[Path, ...], output: Path, labels: tuple[str, ...], title: str | None) -> None:
    """Training/validation loss (left) and validation accuracy (right) over epochs, one curve set per run."""
    from toolkit.plots import plot_training
    from toolkit.runs import load_run

    names = list(labels) + [d.name for d in run_dirs[len(labels):]]
    plot_training([(n, load_run(d)) for n, d in zip(names, run_dirs)], output, title=title)
    console.print(f"wrote {output}")


@cli.command()
@click.argument("model_path", type=click.Path(path_type=Path))
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--layer", required=True, help="Torch module path recorded at export: features.0 (Task 2, Networks 1/2), conv1 or layer4.1.conv2 (ResNet18); an unknown name lists the valid ones.")
@click.option("--filters", "filters_text", help="Channels to draw: 14,26,32,49,52 or a range 0-9 [default: 0-9].")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="PNG file.")
@handle_errors
def activations(model_path: Path, image: Path, layer: str, filters_text: str | None, output: Path) -> None:
    """Activation maps of one layer for a photo; for the first convolution with its filters on top."""
    from toolkit.activations import draw_activations, parse_filters

    filters = parse_filters(filters_text) if filters_text is not None else None
    maps = draw_activations(model_path, image, layer, filters, output)
    kind = "activations"
    if maps.weights is not None:
        kind = f"filter weights{' (BatchNorm folded in)' if maps.bn_folded else ''} and activations"
    console.print(f"wrote {maps.path}: {kind} of {maps.layer} (tensor {maps.tensor}, {maps.channels} channels), "
                  f"filters {', '.join(map(str, maps.filters))}")
