"""Core plugins, loaded for every action."""
