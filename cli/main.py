"""The `fashion-tagger` command: ML commands (core) and the service commands."""

from __future__ import annotations

import typer

from cli import ml, remote, stack

app = typer.Typer(
    name="fashion-tagger",
    help="Tag clothing photos with a Fashion-MNIST CNN: train, evaluate, predict, serve.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
ml.register(app)
stack.register(app)
remote.register(app)


@app.callback()
def main() -> None:
    """Settings come from TAGGER_* environment variables (see README)."""

if __name__ == "__main__":
    app()
