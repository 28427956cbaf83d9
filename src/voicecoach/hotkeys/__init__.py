"""Optional global hotkeys (the ``[hotkeys]`` table and the ``hotkeys`` extra).

- :mod:`.keys`: parse and normalise a binding (pure).
- :mod:`.settings`: the ``[hotkeys]`` settings table (pydantic, no platform code).
- :mod:`.choose`: which mechanism works here, or the one-line reason why none does (pure).
- :mod:`.pynput_keys`: X11, macOS and Windows through pynput, on pynput's own thread.
- :mod:`.portal`: Wayland through the desktop portal's GlobalShortcuts over D-Bus (jeepney).
- :mod:`.run`: :func:`~.run.hotkeys_running`, what ``voicecoach run`` enters.

Importing this package (config.py does, for the settings) loads neither pynput nor jeepney.
"""
