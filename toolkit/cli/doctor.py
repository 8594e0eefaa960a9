"""`toolkit doctor`: what this environment can run, and what to repair."""
from __future__ import annotations

import sys

from rich.table import Table

from toolkit.cli import cli, console, handle_errors


@cli.command()
@handle_errors
def doctor() -> None:
    """Report versions, onnxruntime providers (available and usable), CPU features and threads."""
    from toolkit.environment import check_environment

    env = check_environment()
    table = Table(title="toolkit doctor", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in env.items():
        if key == "problems":
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value) or "-"
        table.add_row(key, str(value))
    console.print(table)
    problems = env.get("problems", [])
    for problem in problems:
        console.print(f"[bold red]problem:[/] {problem}", soft_wrap=True)
    if not problems:
        console.print("[green]no problems found[/]")
    sys.exit(1 if problems else 0)
