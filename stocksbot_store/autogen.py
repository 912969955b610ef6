"""What migration files generated before the move import: the steps they call.

Generated files now import these from :mod:`stocksbot_store.migration.ops`; the
renderer itself is :mod:`stocksbot_store.migration.render`.
"""

from __future__ import annotations

from .migration.ops import alter_type, drop_column, fill_nulls, set_default
from .migration.render import render

__all__ = ["alter_type", "drop_column", "fill_nulls", "render", "set_default"]
