import click


@click.group("topics")
def topics_group() -> None:
    """Kafka topics."""


@click.command("worker")
def worker_command() -> None:
    """Run a stream worker."""


@click.command("demo")
def demo_command() -> None:
    """Run the embedded demo."""
