"""The migration code, in one place: what each module holds.

- :mod:`.runner`: applies and reverts the numbered files of ``migrations/``
  (``playhouse.migrations.Runner`` with a lock, one transaction per migration and
  safe SQLite rebuilds), and :func:`~.runner.ensure_schema`, the schema step of
  :func:`stocksbot_store.store.open_store`;
- :mod:`.drift`: how the live database differs from the models (``migrate check``);
- :mod:`.render`: writes a migration file from that drift (``revision --autogenerate``);
- :mod:`.ops`: steps migration files call that ``playhouse.migrate`` leaves to each
  backend;
- :mod:`.safety`: what ``upgrade`` and ``downgrade`` do first (a backup, the rows a
  downgrade would drop);
- :mod:`.cli`: the command line, ``python -m stocksbot_store.migrate``.

The runner, drift and ops sit low (on :mod:`stocksbot_store.backends` and the
models); the command line sits on top of the store, since ``adopt``, backups and
the ledger check are commands of it. This package imports none of them itself, so
importing :mod:`.runner` costs only the runner.
"""
