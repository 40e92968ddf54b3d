"""Replay and backtest: re-run history through today's models and rules, isolated from live.

`sources` reads historical documents (Kafka by timestamp, the ClickHouse documents table, JSONL
or Parquet archives) with ids and fields preserved; `runner` re-publishes them in event-time
order into a run of its own; `backtest` evaluates rule sets over a run with the alert engine's
range evaluation; `labels` scores alerts against labelled events; `report` renders the result.
"""
