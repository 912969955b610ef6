"""The terminal dashboard of stocksbot-store (a Textual app)."""
