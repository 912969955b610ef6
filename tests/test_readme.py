"""The README's Python snippets run as written, on every backend; every import it shows
works, every export it lists is exported, and every call it lists exists as written."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from conftest import fresh_database_url

import stocksbot_store
from stocksbot_store import StorageService, close_default_databases, connect, init_db

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE_PG_URL = "postgresql://user:pw@localhost/stocksbot"


def readme() -> str:
    return README.read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", readme(), flags=re.S)


def section(title: str) -> str:
    text = readme()
    start = text.index(f"\n{title}\n")
    level = title.split(" ")[0]
    rest = text[start + len(title) + 2 :]
    ends = [m.start() for m in re.finditer(rf"^#{{2,{len(level)}}} ", rest, flags=re.M)]
    return rest[: ends[0]] if ends else rest


def run(block: str, namespace: dict, db_url: str) -> None:
    # The example's PostgreSQL URL stands for "your database": use the test's.
    exec(compile(block.replace(EXAMPLE_PG_URL, db_url), str(README), "exec"), namespace)


def test_readme_has_python_examples():
    assert len(python_blocks()) >= 6


def test_readme_python_snippets_run(db_url, backend, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    namespace: dict = {}
    try:
        for block in python_blocks():
            if "PositionRepository(db)" in block or "init_db()" in block:
                # These examples stand on their own: the repository one opens an AAPL
                # position that the service example has opened already, and the old
                # module's code opens the process's default database itself.
                with fresh_database_url(backend, tmp_path) as other_url:
                    monkeypatch.setenv("DATABASE_URL", other_url)
                    other = init_db(connect(other_url))
                    run(block, {"db": other}, other_url)
                    other.close()
                    close_default_databases()
                monkeypatch.setenv("DATABASE_URL", db_url)
                continue
            run(block, namespace, db_url)
    finally:
        close_default_databases()
    storage = namespace["storage"]
    assert storage.get_position_by_symbol("MSFT").quantity == 70
    assert storage.get_strategy_by_name("momentum").total_trades == 1
    assert storage.is_trading_enabled()
    namespace["db"].close()


def import_lines() -> list[str]:
    lines = []
    for block in python_blocks():
        # Join parenthesised imports onto one line.
        block = re.sub(r"\(\s*([^)]*?)\s*\)", lambda m: " ".join(m.group(1).split()), block)
        lines += [
            line.strip()
            for line in block.splitlines()
            if re.match(r"\s*(from \S+ import |import )", line)
        ]
    return lines


def test_every_import_the_readme_shows_works():
    lines = import_lines()
    assert len(lines) >= 5
    for line in lines:
        if line.startswith("from fastapi"):
            pytest.importorskip("fastapi")
        exec(line, {})


def test_every_store_name_the_readme_imports_is_exported_from_the_package():
    names = set()
    for line in import_lines():
        match = re.match(r"from (stocksbot_store\S*) import (.+)", line)
        if match:
            names |= {n.strip() for n in match.group(2).split(",")}
    assert names
    assert sorted(names - set(stocksbot_store.__all__)) == []


def test_the_exports_section_lists_exactly_the_package_exports():
    listed = set(re.findall(r"`(\w+)`", section("### Exports").split("\n\n", 1)[1]))
    assert listed == set(stocksbot_store.__all__)
    for name in stocksbot_store.__all__:
        assert getattr(stocksbot_store, name) is not None


def documented_calls() -> list[tuple[str, list[str]]]:
    """(method, parameter names) of every call in the "What a bot calls" table."""
    calls = []
    for row in section("### What a bot calls").splitlines():
        if not row.startswith("| `"):
            continue
        for name, params in re.findall(r"`(\w+)\(([^)]*)\)`", row.split(" | ")[0]):
            calls.append((name, [p.split("=")[0].strip() for p in params.split(",") if p.strip()]))
    return calls


def test_every_call_the_readme_lists_exists_as_written():
    calls = documented_calls()
    assert {
        "cancel_order",
        "get_order",
        "get_order_fills",
        "halt_trading",
        "resume_trading",
        "is_trading_enabled",
        "set_trading_enabled",
    } <= {name for name, _ in calls}
    for name, params in calls:
        method = getattr(StorageService, name, None)
        assert callable(method), name
        signature = inspect.signature(method)
        accepted = list(signature.parameters)[1:]
        assert set(params) <= set(accepted), (name, params, accepted)
