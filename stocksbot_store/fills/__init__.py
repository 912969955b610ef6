"""Recording fills: one transaction updates trade, order, position and strategy.

* :mod:`.rows`: a fill as given and as checked, and the plain tuples the fill path
  reads and writes;
* :mod:`.statements`: the statements those tuples go into, built once per database
  from the models;
* :mod:`.recorder`: :class:`FillRecorder`, one fill per transaction, and the entry
  to the bulk path;
* :mod:`.bulk`: a batch of fills in one transaction with a handful of statements;
* :mod:`.importer`: any number of fills, read as they come and recorded in batches
  through the bulk path, with memory that does not grow with them;
* :mod:`.alongside`: the other rows written in a fill's transaction (report figures);
* :mod:`.collector`: the garbage collector paused while a batch is in memory.

The book-keeping rules themselves (positions by average cost, order statuses,
strategy figures) live in :mod:`stocksbot_store.ledger`.
"""

from ..models import ZERO
from .importer import ImportSummary, import_fills
from .recorder import FillRecorder
from .rows import CheckedFill, Fill, check_fill

__all__ = [
    "CheckedFill",
    "Fill",
    "FillRecorder",
    "ImportSummary",
    "check_fill",
    "import_fills",
    "ZERO",
]
