"""Database URLs: which one to use, and how to show one without its password.

Configuration is a URL, read in one place (:func:`database_url`): the ``url``
argument, else ``DATABASE_URL``, else :data:`DEFAULT_URL`. :func:`mask_url` and
:func:`scrub` keep passwords out of everything shown, whatever the URL's shape.
This module works on text only; :mod:`stocksbot_store.database` opens the URL.
:class:`ArgumentParser` is argparse's, with the same care for the command line's
own errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn
from urllib.parse import parse_qsl, unquote, urlparse

#: Where the store lives when neither the caller nor ``DATABASE_URL`` says.
DEFAULT_URL = "sqlite:///./stocksbot.db"


def database_url(url: str | None = None) -> str:
    """The URL to use: ``url``, else ``$DATABASE_URL``, else :data:`DEFAULT_URL`."""
    return url or os.environ.get("DATABASE_URL") or DEFAULT_URL


#: Query parameters that hold a secret (compared lower-cased, after percent-decoding).
_SECRET_KEYS = ("password", "passwd", "sslpassword", "pass", "pwd", "secret", "token")


def mask_url(url: str) -> str:
    """``url`` with every password replaced by ``***``, safe to log or show.

    It does not trust the URL to be well formed: the password of a ``user:pass@``
    form is everything between the first ``:`` of the user part and the last ``@``
    (so an unencoded ``#``, ``/``, ``?``, ``@`` or ``:`` in it stays hidden), and
    the value of every query parameter whose name holds ``pass``, ``pwd``,
    ``secret`` or ``token`` (in any case, percent-encoded or not) is masked up to
    the next ``&``. A URL without ``scheme://`` is shown only if it holds no ``@``
    and no such word.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        lowered = unquote(url).lower()
        if "@" in url or any(key in lowered for key in _SECRET_KEYS):
            return "<database URL hidden: it cannot be parsed>"
        return url
    userinfo, at, after = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.split(':', 1)[0]}:***@{after}"
    head, question, query = rest.partition("?")
    if not question:
        return f"{scheme}://{rest}"
    pairs = []
    for pair in query.split("&"):
        key, equals, _ = pair.partition("=")
        if equals and any(word in unquote(key).lower() for word in _SECRET_KEYS):
            pair = f"{key}=***"
        pairs.append(pair)
    return f"{scheme}://{head}?{'&'.join(pairs)}"


def url_secrets(url: str) -> tuple[str, ...]:
    """The password text of ``url`` in every form a message could show it (as written,
    percent-decoded, and its pieces between unencoded delimiters), longest first."""
    found: set[str] = set()
    _, _, rest = url.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    if at and ":" in userinfo:
        found.add(userinfo.split(":", 1)[1])
    for pair in rest.partition("?")[2].split("&"):
        key, equals, value = pair.partition("=")
        if equals and any(word in unquote(key).lower() for word in _SECRET_KEYS):
            found.add(value)
    pieces = set()
    for secret in found:
        for form in (secret, unquote(secret)):
            pieces.add(form)
            pieces.update(p for p in _split_delimiters(form) if len(p) >= 4)
    return tuple(sorted((p for p in pieces if p), key=len, reverse=True))


def _split_delimiters(text: str) -> list[str]:
    for delimiter in "/?#@:&":
        text = text.replace(delimiter, "\0")
    return text.split("\0")


def scrub(text: str, url: str | None) -> str:
    """``text`` with the password of ``url`` (in any of its forms) replaced by ``***``."""
    if url:
        for secret in url_secrets(url):
            text = text.replace(secret, "***")
    return text


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser for the store's commands: an error that quotes the command line
    (a URL given as a positional argument, after a misspelt ``--url``, or where a number
    belongs) shows any password in it as ``***``."""

    _given: Sequence[str] = ()

    def parse_known_args(  # type: ignore[override]  # same call, typed loosely
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        for argument in self._given:
            message = scrub(message, argument)
        super().error(message)


def sqlite_file_path(name: str) -> str | None:
    """The absolute path of the file the SQLite database ``name`` opens, or None for a
    database in memory.

    ``name`` is what ``sqlite3.connect`` is given (a Peewee ``SqliteDatabase``'s
    ``database``): a path, or a ``file:`` URI (``file:/srv/bot.db?mode=ro``,
    ``file:///srv/bot.db``, ``file://localhost/srv/bot.db``, ``file:bot.db``) whose
    path is percent-decoded and whose query does not belong to the file name. In
    memory: ``""``, ``:memory:``, ``mode=memory`` and the ``memdb`` VFS (what
    ``connect("sqlite://")`` uses).
    """
    if name in ("", ":memory:"):
        return None
    if not name.startswith("file:"):
        return os.path.abspath(name)
    rest = name[len("file:") :].partition("#")[0]
    path, _, query = rest.partition("?")
    if path.startswith("//"):  # an authority: empty or "localhost", as SQLite allows
        _authority, slash, tail = path[2:].partition("/")
        path = slash + tail
    options = dict(parse_qsl(query, keep_blank_values=True))
    path = unquote(path)
    if path in ("", ":memory:") or options.get("mode") == "memory" or options.get("vfs") == "memdb":
        return None
    return os.path.abspath(path)


def sqlite_url_file_path(url: str) -> str | None:
    """The absolute path of the file the SQLite URL ``url`` opens, or None for a
    database in memory or a URL of another backend.

    The path is read as ``playhouse.db_url`` reads it; for a ``file:`` URI
    (``sqlite:///file:/srv/bot.db?mode=rw``) the URL's query is the URI's, so
    ``sqlite:///file:/stocksbot?vfs=memdb`` is in memory (see :func:`sqlite_file_path`).
    """
    parts = urlparse(url)
    if not parts.scheme.startswith("sqlite"):
        return None
    name = parts.path[1:]
    return sqlite_file_path(f"{name}?{parts.query}" if name.startswith("file:") else name)
