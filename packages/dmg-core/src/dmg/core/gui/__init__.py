"""``dmg gui``: a local web page that edits run configs, generated from their JSON Schema.

:mod:`~dmg.core.gui.server` serves the page and its API, :mod:`~dmg.core.gui.documents` reads and
writes config files inside the working directory, :mod:`~dmg.core.gui.checks` validates them.
"""
