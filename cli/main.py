"""The `fashion-tagger` command: ML commands (core) and the service commands."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from cli import ml, remote, stack

# What scripts may rely on; `fashion-tagger --help` shows it too.
EXIT_CODES = {
    0: "done (for `submit --wait`: the job succeeded)",
    1: "the job failed or was cancelled, the server answered an error, or it could not be"
       " reached (one line on stderr: `error: <message> (<code>, HTTP <status>)`)",
    2: "usage error: an unknown option, a bad value, a missing argument",
}
EPILOG = "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())

app = typer.Typer(
    name="fashion-tagger",
    help="Tag clothing photos with a Fashion-MNIST CNN: train, evaluate, predict, serve.",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
ml.register(app)
stack.register(app)
remote.register(app)


def package_version() -> str:
    try:
        return version("fashion-tagger")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"fashion-tagger {package_version()}")
        raise typer.Exit()


@app.callback()
def main(
    _version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit")] = False,
) -> None:
    """Settings come from TAGGER_* environment variables (see README)."""

if __name__ == "__main__":
    app()
