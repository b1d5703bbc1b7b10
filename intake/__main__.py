"""`python -m intake` and the `intake` command: run the command line."""

from __future__ import annotations


def main() -> None:
    """Run the command line.

    The import waits until here: the processes that multiprocessing spawns (the parser pool)
    import the script that started intake again, and need not load the whole command line.
    """
    from intake.cli import main as run_cli  # noqa: PLC0415

    run_cli()


if __name__ == "__main__":
    main()
