"""Numbered schema migrations of the store, shipped as ``stocksbot_store.migrations``."""
