"""finsentry: financial sentiment monitoring from crawl to alert."""

__version__ = "0.1.0"
