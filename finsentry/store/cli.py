import click


@click.group("db")
def db_group() -> None:
    """ClickHouse schema and data."""
