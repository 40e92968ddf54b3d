"""Explicit registries: rule kinds and notifiers, one line each.

`RuleConfig` (the discriminated union on `type`) is built from RULE_TYPES and used by
`finsentry.config.AlertSettings.rules` and the rules folder, so a new kind needs no other edit.
(Imported by finsentry.config: keep plugin imports light.)
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field

from finsentry.alerts.base import Rule, RuleSpec
from finsentry.alerts.kinds import (
    BaselineRule,
    FlatlineRule,
    NegativeSpikeSpec,
    SpikeRule,
    ThresholdRule,
)
from finsentry.alerts.mail import EmailNotifier
from finsentry.alerts.notify import LogNotifier, Notifier
from finsentry.alerts.significance import SignificanceRule
from finsentry.alerts.webhook import WebhookNotifier

RULE_TYPES: dict[str, type[Rule]] = {
    "significance": SignificanceRule,
    "spike": SpikeRule,
    "baseline": BaselineRule,
    "threshold": ThresholdRule,
    "flatline": FlatlineRule,
}

NOTIFIERS: dict[str, type[Notifier]] = {
    "log": LogNotifier,
    "email": EmailNotifier,
    "webhook": WebhookNotifier,
}

# The retired type stays in the union only to fail with its replacement named.
_specs: tuple[Any, ...] = (*(rule.spec_class for rule in RULE_TYPES.values()), NegativeSpikeSpec)
RuleConfig: Any = Annotated[Union[_specs], Field(discriminator="type")]  # noqa: UP007


def build_rule(spec: RuleSpec) -> Rule:
    """The Rule object for a validated spec."""
    return RULE_TYPES[getattr(spec, "type")](spec)  # noqa: B009
