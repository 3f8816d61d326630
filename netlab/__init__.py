"""netlab: a Linux network lab for congestion-control research."""

__version__ = "0.1.0"
