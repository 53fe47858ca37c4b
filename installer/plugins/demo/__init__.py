"""The demo group: a tiny action that exercises the engine (install demo)."""
