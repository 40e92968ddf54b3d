"""One root exception; one subclass per package so callers can catch by layer."""


class FinsentryError(Exception):
    """Root of every error finsentry raises on purpose."""


class ConfigError(FinsentryError):
    """The configuration is invalid (the message names the key)."""


class RecordError(FinsentryError):
    """A message does not satisfy the record contract (the message names the field)."""


class StoreError(FinsentryError):
    """ClickHouse could not be reached or rejected a statement."""


class StoreDataError(StoreError):
    """ClickHouse refused a value (out of range, too large, unparsable): the data is at fault,
    so retrying the same rows cannot help; a writer isolates and dead-letters the culprits."""


class StoreUnavailableError(StoreError):
    """ClickHouse stayed unreachable or overloaded for every configured attempt (transient)."""


class StoreInterrupted(StoreError):
    """A retry loop was interrupted (shutdown): the write may or may not have landed."""


class KafkaAdminError(FinsentryError):
    """Topics could not be created or inspected (the message names the topic)."""


class IngestError(FinsentryError):
    """A crawler failed (the message names the source and URL)."""


class ModelError(FinsentryError):
    """A classifier could not be loaded, trained or run."""


class StreamError(FinsentryError):
    """The stream worker failed (the message names the topic)."""


class AlertError(FinsentryError):
    """A rule or notifier failed (the message names the rule)."""


class DashboardError(FinsentryError):
    """Dashboards could not be built, pushed or previewed (the message names the panel or URL)."""


class ReplayError(FinsentryError):
    """A replay or backtest failed (the message names the run, source or rule)."""
