"""Adapters that run models of external hydrology libraries as dmg physics models.

Each adapter imports its library only when used; install the library separately (see the
adapter's documentation for its licence).
"""
