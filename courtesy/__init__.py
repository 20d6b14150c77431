"""courtesy: a local mail proxy that keeps business correspondence courteous."""

__version__ = "0.1.0"
