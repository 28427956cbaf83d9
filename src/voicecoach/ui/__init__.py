"""User interfaces: line mode (plain.py) and the full-screen Textual app (tui.py)."""
