"""A stateful OpenNebula XML-RPC simulator that real pyone talks to (see sim.py)."""

from .sim import OneSim

__all__ = ["OneSim"]
