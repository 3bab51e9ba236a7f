"""Sleuth: alignment audits for hidden objectives."""

__version__ = "0.1.0"
