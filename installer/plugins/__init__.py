"""Installer plugins, one folder per group (core, importer, setup, cleanup, hooks,
vmcatcher, demo); each module of a group defines `class Plugin(engine.PluginBase)`."""
