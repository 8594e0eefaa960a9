"""`toolkit bench`: torch vs ONNX Runtime, accuracy and latency, as a table and a JSON record."""
from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from toolkit.cli import cli, console, handle_errors, parse_sizes


@cli.command()
@click.argument("checkpoint", required=False, type=click.Path(path_type=Path))
@click.argument("model_path", metavar="MODEL.onnx", required=False, type=click.Path(path_type=Path))
@click.option("--provider", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the versioned record here.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), help="Latency/throughput figure (PNG).")
@click.option("--batch-sizes", default="1,8,64,256", show_default=True)
@click.option("--runs", type=int, default=50, show_default=True, help="Timed runs per engine and batch size.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs before timing.")
@click.option("--time-budget", type=float, help="Seconds per engine and batch size instead of --runs.")
@click.option("--threads", type=int, help="Intra-op threads for both engines [default: all cores].")
@click.option("--images", type=click.IntRange(min=1), help="Test images for the accuracy side [default: all 10,000].")
@click.option("--no-memory", is_flag=True, help="Skip the per-scenario peak-memory child processes.")
@click.option("--image", type=click.Path(path_type=Path),
              help="Photo the edge memory scenario classifies [default: images/cat.jpg beside the data].")
@click.option("--data", type=click.Path(path_type=Path), help="CIFAR-10 location.")
@click.option("--compare", nargs=2, type=click.Path(path_type=Path), help="Print ratios between two records A B.")
@handle_errors
def bench(checkpoint: Path | None, model_path: Path | None, provider: str, json_path: Path | None,
          plot_path: Path | None, batch_sizes: str, runs: int, warmup: int, time_budget: float | None,
          threads: int | None, images: int | None, no_memory: bool, image: Path | None, data: Path | None,
          compare: tuple[Path, Path] | None) -> None:
    """Compare torch and ONNX Runtime: accuracy on the test set, latency, throughput, memory."""
    from benchmarks import compare_records, format_comparison, plot_record, read_record, write_record

    if compare:
        a, b = compare
        labels = (a.name, b.name)
        if a.name == b.name:  # runs/x/bench.json against runs/y/bench.json: name the columns A and B
            labels = ("A", "B")
            console.print(f"A = {a}\nB = {b}", highlight=False, markup=False, soft_wrap=True)
        console.print(format_comparison(compare_records(read_record(a), read_record(b)),
                                        a_label=labels[0], b_label=labels[1]), highlight=False, markup=False,
                      soft_wrap=True)  # aligned columns: never re-wrapped at the terminal width
        return
    if checkpoint is None or model_path is None:
        raise click.UsageError("expected CHECKPOINT and MODEL.onnx (or --compare A.json B.json)")
    from toolkit.benchmark import bench_checkpoint, check_output_path

    for option, path in (("--json", json_path), ("--plot", plot_path)):
        if path is not None:
            check_output_path(path, option)  # before a benchmark that may take minutes
    sizes = parse_sizes(batch_sizes, example="1,8,64,256")  # before the progress display starts
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    progress = Progress(*columns, console=console, transient=True)
    task = progress.add_task("benchmark", total=None)

    def on_progress(message: str, done: int, total: int) -> None:
        progress.start()  # at the first step: an error before the benchmark starts stays one line
        progress.update(task, description=message, completed=done, total=total)

    try:
        result = bench_checkpoint(
            checkpoint, model_path, provider=provider, data=data, batch_sizes=sizes, runs=runs,
            warmup=warmup, time_budget_s=time_budget, threads=threads, images=images, memory=not no_memory,
            image=image,
            on_estimate=lambda s: console.print(f"estimated time: about {s:.0f} s"), on_progress=on_progress)
    finally:
        if progress.live.is_started:  # a display never started must not print its closing blank line
            progress.stop()
    _print_result(result)
    if json_path:
        console.print(f"wrote {write_record(json_path, result)}")
    if plot_path:
        console.print(f"wrote {plot_record(result, plot_path)}")


def _print_result(result) -> None:  # type: ignore[no-untyped-def]
    rows = result.rows()
    table = Table(title="Latency and throughput")
    for col in rows[0]:
        table.add_column(col, justify="left" if col == "engine" else "right")
    for row in rows:
        table.add_row(*row.values())
    console.print(table)
    summary = Table(show_header=False, title="Summary")
    summary.add_column(style="bold")
    summary.add_column()
    for label, value in result.summary_rows():
        summary.add_row(label, value)
    console.print(summary)


@cli.command("bench-summary")
@click.argument("records", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--markdown", "markdown_path", type=click.Path(path_type=Path), help="Also write both tables as Markdown.")
@handle_errors
def bench_summary(records: tuple[Path, ...], markdown_path: Path | None) -> None:
    """Benchmark records (from `toolkit bench --json`) side by side: latency per batch size, facts per record."""
    from benchmarks import read_record
    from benchmarks.summary import FACT_COLUMNS, LATENCY_COLUMNS, fact_rows, latency_rows, to_markdown
    from toolkit.fileio import write_atomic

    loaded = [(path.stem, read_record(path)) for path in records]
    tables = [("Latency and throughput", LATENCY_COLUMNS, latency_rows(loaded)),
              ("Accuracy, memory, overhead", FACT_COLUMNS, fact_rows(loaded))]
    for title, columns, rows in tables:
        table = Table(title=title)
        for col in columns:
            table.add_column(col, justify="left" if col in ("record", "model") else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    if markdown_path:
        text = "\n".join(to_markdown(columns, rows) for _, columns, rows in tables)
        console.print(f"wrote {write_atomic(markdown_path, lambda f: f.write(text.encode()))}")
