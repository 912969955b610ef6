"""The README's Python snippets run as written, on every backend."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import fresh_database_url

from stocksbot_store import connect, init_db

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE_PG_URL = "postgresql://user:pw@localhost/stocksbot"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def run(block: str, namespace: dict, db_url: str) -> None:
    # The example's PostgreSQL URL stands for "your database": use the test's.
    exec(compile(block.replace(EXAMPLE_PG_URL, db_url), str(README), "exec"), namespace)


def test_readme_has_python_examples():
    assert len(python_blocks()) >= 4


def test_readme_python_snippets_run(db_url, backend, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    namespace: dict = {}
    for block in python_blocks():
        if "PositionRepository(db)" in block:
            # The repository example stands on its own: it opens an AAPL position that
            # the service example has opened already, on a database of its own.
            with fresh_database_url(backend, tmp_path) as other_url:
                other = init_db(connect(other_url))
                run(block, {"db": other}, other_url)
                other.close()
            continue
        run(block, namespace, db_url)
    storage = namespace["storage"]
    assert storage.get_position_by_symbol("MSFT").quantity == 70
    assert storage.get_strategy_by_name("momentum").total_trades == 1
    namespace["db"].close()
