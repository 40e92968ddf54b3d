"""Explicit list of the packages' command groups (one line each)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    from finsentry.alerts.cli import alerts_group
    from finsentry.dashboards.cli import dashboards_group
    from finsentry.ingest.cli import ingest_group
    from finsentry.models.cli import models_group
    from finsentry.replay.cli import backtest_command, replay_command, runs_group
    from finsentry.store.cli import db_group
    from finsentry.streams.cli import demo_command, topics_group, worker_command

    for command in (topics_group, db_group, worker_command, demo_command, ingest_group,
                    models_group, alerts_group, dashboards_group, replay_command,
                    backtest_command, runs_group):
        cli.add_command(command)
