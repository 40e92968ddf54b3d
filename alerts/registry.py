"""Explicit registry of rule types: one line per type.

`RuleConfig` (the discriminated union on `type`) is built from it and used by
`finsentry.config.AlertSettings.rules`, so a new rule type needs no other edit. Same for
notifiers: one line in NOTIFIERS. (Imported by finsentry.config: keep plugin imports light.)
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field

from finsentry.alerts.base import Rule, RuleSpec
from finsentry.alerts.mail import EmailNotifier
from finsentry.alerts.negative_spike import NegativeSpikeRule
from finsentry.alerts.notify import LogNotifier, Notifier

RULE_TYPES: dict[str, type[Rule]] = {
    "negative_spike": NegativeSpikeRule,
}

NOTIFIERS: dict[str, type[Notifier]] = {
    "log": LogNotifier,
    "email": EmailNotifier,
}

_specs: tuple[Any, ...] = tuple(rule.spec_class for rule in RULE_TYPES.values())
RuleConfig: Any = Annotated[Union[_specs], Field(discriminator="type")]  # noqa: UP007


def build_rule(spec: RuleSpec) -> Rule:
    """The Rule object for a validated spec from the config."""
    return RULE_TYPES[getattr(spec, "type")](spec)  # noqa: B009
