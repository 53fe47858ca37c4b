"""The vmcatcher event handler: lands each new version of a subscribed image in
OpenNebula, keeping the owner, group and permissions the site gave the previous one.

vmcatcher runs it once per event (VMCATCHER_CACHE_EVENT); `main()` in handler.py is
its entry point.  Standard library only, except pyone, imported lazily.
"""
