"""The one console script, `finsentry`, and its subcommands.

Settings are loaded once here and handed down through the click context. Each package owns its
own command group (`finsentry.<pkg>.cli`) registered below; heavy imports (torch, faust) happen
inside commands so `finsentry --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from finsentry.config import Settings, env_var_for, load_settings
from finsentry.errors import FinsentryError

F = TypeVar("F", bound=Callable[..., Any])


def setting_option(section: str, key: str, *decls: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option that overrides `section.key`; --help names its environment variable.

    The Python parameter is always named `key`, whatever the flag spelling."""
    kwargs.setdefault("default", None)
    return click.option(
        *decls, key, envvar=env_var_for(section, key), show_envvar=True,
        help=kwargs.pop("help", f"Overrides {section}.{key}."), **kwargs,
    )


def apply_overrides(settings: Settings, section: str, **values: Any) -> Settings:
    """Return settings with the given non-None option values set in `section` (validated)."""
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return settings
    data = settings.model_dump()
    data[section].update(given)
    return Settings.model_validate(data)


pass_settings = click.make_pass_decorator(Settings)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="FINSENTRY_CONFIG", show_envvar=True, help="TOML config file.")
@click.version_option(package_name="finsentry")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """finsentry: financial sentiment monitoring from crawl to alert."""
    ctx.obj = load_settings(config_path)


@cli.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@pass_settings
def config_show(settings: Settings) -> None:
    """Print the effective configuration (file + environment), secrets redacted."""
    click.echo(json.dumps(settings.redacted(), indent=2, default=str))


@config_group.command("reference")
def config_reference() -> None:
    """Print every setting as a Markdown table (key, environment variable, default, meaning)."""
    from finsentry.config import reference_rows

    click.echo("| key | environment variable | default | meaning |")
    click.echo("|---|---|---|---|")
    for key, env, default, doc in reference_rows():
        click.echo(f"| `{key}` | `{env}` | `{default}` | {doc} |")


def _register() -> None:
    from finsentry.commands import register

    register(cli)


_register()


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="finsentry", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except FinsentryError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
