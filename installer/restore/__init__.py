"""What `install import` needs beyond the engine: reading the target's identity,
streaming file sets safely onto a root, packages with dnf, the database restore.
Standard library only (psycopg2 is imported lazily by the database part)."""
