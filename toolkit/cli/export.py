"""`toolkit export --onnx`: fold, export, validate on real images, write the JSON report."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from toolkit.cli import cli, console, handle_errors, parse_sizes


@cli.command()
@click.option("--onnx", "checkpoint", required=True, type=click.Path(path_type=Path),
              help="Checkpoint to export (checkpoint.pt from 'toolkit train').")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="ONNX file [default: beside the checkpoint].")
@click.option("--opset", type=int, default=18, show_default=True)
@click.option("--data", type=click.Path(path_type=Path), help="CIFAR-10 location for the validation images.")
@click.option("--images", type=click.IntRange(min=1), default=512, show_default=True,
              help="Real test images to validate on.")
@click.option("--batch-sizes", default="1,7,64", show_default=True,
              help="Batch sizes the graph is run at (2 and an odd size above 2 are always added).")
@click.option("--atol", type=float, help="Max |torch - onnx| logit difference [default: the model's].")
@click.option("--diagnose", is_flag=True, help="Compare every layer and name the first that differs.")
@handle_errors
def export(checkpoint: Path, output: Path | None, opset: int, data: Path | None, images: int,
           batch_sizes: str, atol: float | None, diagnose: bool) -> None:
    """Fold BatchNorms, export to ONNX and prove on real images that ONNX computes what torch computes."""
    from toolkit.deploy import export_checkpoint

    sizes = parse_sizes(batch_sizes)
    outcome = export_checkpoint(checkpoint, output, opset=opset, data=data, images=images,
                                batch_sizes=sizes, atol=atol, diagnose=diagnose)
    r = outcome.report
    fold = Table(title="BatchNorm folding", show_lines=False)
    for col in ("BatchNorm", "action", "into", "reason"):
        fold.add_column(col)
    for entry in r.get("fold", {}).get("entries", []):
        fold.add_row(entry["bn"], entry["action"], entry.get("into") or "-", entry.get("reason") or "")
    if fold.row_count:
        console.print(fold)
    console.print(f"wrote {outcome.onnx_path} (opset {r['opset']}, {r['batchnorm_nodes']} BatchNormalization "
                  f"nodes left) and {outcome.report_path}")
    verdict = "[green]PASS[/]" if outcome.passed else "[red]FAIL[/]"
    console.print(f"validation {verdict}: {r['images']} real test images at batch sizes {r['batch_sizes']}, "
                  f"max |diff| {r['max_abs_diff']:.2e} (tolerance {r['atol']:g}), "
                  f"top-1 agreement {r['top1_agreement']:.4f}")
    if "diagnosis" in r:
        diagnosis = r["diagnosis"]
        console.print(f"diagnosis: {diagnosis.get('message') or diagnosis.get('first_mismatch') or 'no layer differs'}")
    if not outcome.passed:
        for failure in r.get("failures", []):
            console.print(f"[red]- {failure}[/]")
        sys.exit(1)
