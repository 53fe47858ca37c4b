"""satchel's installer: runs on the target with the system python3 (3.9+).

Its core (verify, inspect, the engine, files, packages) needs the standard library
alone; plugins that need psycopg2 or pyone import them lazily.
"""

VERSION = "0.1.0"
BUNDLE_FORMAT = 1
