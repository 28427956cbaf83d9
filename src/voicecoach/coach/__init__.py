"""The coach: pure logic (no I/O, ``now`` passed in) — phrases, conversation, usage, states and the Coach."""
