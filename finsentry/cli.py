"""The one console script, `finsentry`, and its subcommands.

Settings are loaded once here and handed down through the click context. Each package owns its
own command group (`finsentry.<pkg>.cli`) registered below; heavy imports (torch, faust) happen
inside commands so `finsentry --help` stays fast.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from finsentry.config import Settings, env_var_for, load_settings
from finsentry.errors import FinsentryError

F = TypeVar("F", bound=Callable[..., Any])
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_STATE: dict[str, bool] = {"debug": False}


def log_level_option(fn: F) -> F:
    """`--log-level`, checked against the logging levels (case-insensitive)."""
    return click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False),
                        default="WARNING", show_default=True,
                        help="Log level of this command.")(fn)


def setup_logging(level: str) -> None:
    """Log lines on stderr, their messages made inert (crawled text is untrusted)."""
    from finsentry.sanitize import InertFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(InertFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


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
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            key = loc[1] if len(loc) > 1 and loc[0] == section else ".".join(loc)
            flag = "--" + key.replace("_", "-")
            problems.append(f"{section}.{key} ({flag}): {err['msg']}")
        raise click.UsageError("; ".join(problems)) from None


pass_settings = click.make_pass_decorator(Settings)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="FINSENTRY_CONFIG", show_envvar=True, help="TOML config file.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="finsentry")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, debug: bool) -> None:
    """finsentry: financial sentiment monitoring from crawl to alert."""
    _STATE["debug"] = debug
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


def _fail(message: str, code: int, exc: BaseException) -> None:
    """One line naming the culprit; the traceback only with --debug."""
    from finsentry.sanitize import inert

    if _STATE["debug"]:
        traceback.print_exception(exc)
    click.echo(f"error: {inert(message)}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    _STATE["debug"] = "--debug" in args  # also before the group callback ran
    try:
        rv = cli.main(args=args, prog_name="finsentry", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except FinsentryError as exc:
        _fail(str(exc), 2, exc)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug or an unclassified library error: still one line
        _fail(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)", 1, exc)
    if isinstance(rv, int) and rv:
        sys.exit(rv)


if __name__ == "__main__":
    main()
