"""``voicecoach ctl``: drive a running ``voicecoach run`` (or ``demo``) from a desktop shortcut, over a Unix socket.

* :mod:`.wire`: the protocol, one JSON line each way (stdlib only);
* :mod:`.paths`: where the sockets live, and which of them are safe to use and still answered (stdlib only);
* :mod:`.client`: the ``voicecoach ctl`` command (stdlib only: a bound shortcut must act fast);
* :mod:`.server`: the socket inside the run, answering through :class:`voicecoach.control.Controls`.

Nothing here imports the rest of voicecoach at module level: ``voicecoach ctl`` loads this package only.
"""
