"""finsentry.alerts: rules over ClickHouse aggregates -> alerts table -> notifiers.

Modelled on ElastAlert2 (rule -> matches -> alerters, realert). Config:

    [alerts]                      # finsentry.config.AlertSettings
    interval_s = 60               # `finsentry alerts run` evaluates every interval
    notifiers = ["log", "email"]  # registry: finsentry.alerts.registry.NOTIFIERS
    mail_to = ["ops@example.com"]
    [[alerts.rules]]              # `type` picks the rule: registry.RULE_TYPES
    type = "negative_spike"
    name = "ticker-negative-spike"
    group_by = ["ticker"]         # any of ticker / topic / source
    window_minutes = 15           # ... vs a baseline over the preceding baseline_minutes
    threshold = 0.6
    min_docs = 5
    baseline_factor = 2.0
    realert_minutes = 60

Modules: base (Rule, Match, alert ids), negative_spike (first rule type), notify (Notifier, log),
mail (email), registry (both registries), engine (one cycle: alerts-table state, realert,
retries), cli (`finsentry alerts run|check`). Rows are read for worker.run_id (live) or the run
id a replay used (`finsentry alerts check --run-id R --as-of T` for backtests).
"""
