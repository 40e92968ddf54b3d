"""Explicit list of the packages' command groups (one line each)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    from finsentry.store.cli import db_group
    from finsentry.streams.cli import demo_command, topics_group, worker_command

    cli.add_command(topics_group)
    cli.add_command(db_group)
    cli.add_command(worker_command)
    cli.add_command(demo_command)
    cli.add_command(__import__("finsentry.models.cli", fromlist=["x"]).models_group)
    cli.add_command(__import__("finsentry.alerts.cli", fromlist=["x"]).alerts_group)
    cli.add_command(__import__("finsentry.ingest.cli", fromlist=["x"]).ingest_group)
