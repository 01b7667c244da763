"""``wspace train``: generate zoos by training networks into a store."""

from __future__ import annotations

from typing import Annotated

import typer

from wspace.cli.common import OPTIONS, URL, reports_errors, storage_options

__all__ = ["train_app"]

train_app = typer.Typer(
    help="Generate zoos by training networks into a store.", no_args_is_help=True
)


@train_app.command("sweep")
@reports_errors
def train_sweep(
    spec: Annotated[str, typer.Argument(help="TOML sweep spec (docs/training.md).")],
    url: URL,
    storage_option: OPTIONS = None,
    fixed: Annotated[
        bool, typer.Option("--fixed", help="Every network gets the spec's fixed architecture.")
    ] = False,
    networks: Annotated[int | None, typer.Option(help="Networks (default: the spec's).")] = None,
    snapshots: Annotated[
        int | None, typer.Option(help="Snapshots per network, as step rows (default: 20).")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda (cuda:N) or mps.")] = "cpu",
) -> None:
    """Train NWS-style networks of randomly drawn architecture and hyper-parameters into URL.

    Each architecture is its own group of the store; re-running resumes.
    """
    from wspace.train.sweep import run_sweep
    from wspace.train.sweep_spec import load_spec

    report = run_sweep(
        load_spec(spec),
        url,
        fixed=fixed,
        networks=networks,
        snapshots=snapshots,
        device=device,
        storage_options=storage_options(storage_option),
    )
    typer.echo(
        f"{len(report.trained)} trained, {report.skipped} already in the store, "
        f"{report.planned} planned, {len(report.archs)} architecture group(s)"
    )


@train_app.command("lenet5")
@reports_errors
def train_lenet5(
    url: URL,
    storage_option: OPTIONS = None,
    dataset: Annotated[str, typer.Option(help="digits (offline) or imagenette.")] = "digits",
    root: Annotated[
        str | None, typer.Option(help="Imagenette folder (train/ and val/ class folders).")
    ] = None,
    per_class: Annotated[int, typer.Option(help="Networks per class.")] = 5,
    classes: Annotated[
        str | None, typer.Option(help="Comma-separated positive classes (default: all).")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs per network.")] = 20,
    negatives: Annotated[
        int | None, typer.Option(help="Random negatives per network (default: all others).")
    ] = None,
    snapshots: Annotated[
        bool, typer.Option(help="Also store every epoch's weights as rows with step.")
    ] = False,
    workers: Annotated[int, typer.Option(help="Worker processes (or Dask workers).")] = 2,
    threads: Annotated[int, typer.Option(help="torch threads per worker.")] = 1,
    scheduler: Annotated[
        str | None, typer.Option(help="dask.distributed scheduler address (tcp://HOST:PORT).")
    ] = None,
    dask_local: Annotated[
        bool, typer.Option("--dask-local", help="Run the workers on a local Dask cluster.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Base seed of the networks.")] = 0,
    population: Annotated[
        int | None,
        typer.Option(
            help="Networks a worker trains at once (default: todo/(4 workers), <= 16 on CPU)."
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda (cuda:N) or mps.")] = "cpu",
) -> None:
    """Train one-vs-all LeNet-5s (the hypernetwork zoo's) into URL; re-running resumes.

    Every finished network is committed at once, so Ctrl-C or a killed worker loses only the
    networks in training; run the same command again to complete the zoo.
    """
    from wspace.train.orchestrate import train_zoo
    from wspace.train.worker import TrainSettings

    settings = TrainSettings(
        dataset=dataset, root=root, epochs=epochs, negatives=negatives, snapshots=snapshots,
        device=device,
    )  # fmt: skip
    report = train_zoo(
        url,
        classes=[c.strip() for c in classes.split(",")] if classes else None,
        per_class=per_class,
        settings=settings,
        workers=workers,
        threads_per_worker=threads,
        scheduler=scheduler,
        dask_local=dask_local,
        seed=seed,
        storage_options=storage_options(storage_option),
        population=population,
    )
    typer.echo(
        f"{len(report.trained)} trained, {report.skipped} already in the store, "
        f"{report.planned} planned; {report.nets_per_minute:.1f} networks/minute"
    )
    if not report.complete:
        typer.echo(
            f"wspace: error: {report.failed_workers} worker(s) failed; run the same "
            "command again to finish the zoo",
            err=True,
        )
        raise typer.Exit(2)
