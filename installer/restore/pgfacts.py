"""Facts about a PostgreSQL database that a dump and its restore must agree on.

`table_facts(conn)` gives, for every user table, its exact row count and a content
checksum that the import recomputes after `pg_restore` to prove the data arrived.

The checksum is order independent, so it needs no sort, holds nothing in memory on
either side and does not depend on the collation. For each row r, the server
hashes r::text into two 64-bit integers a and b; the checksum is
hex(sum(a) mod 2**64) || hex(sum(b) mod 2**64), 32 hex digits, computed in one
sequential scan per table (`SELECT count(*), sum(..), sum(..) FROM ONLY tbl`).
An empty table gives 32 zeros. Two methods:

- "hashtext-rowsum-v1" (PostgreSQL 11+): a = hashtextextended(r::text, 0),
  b = hashtextextended(r::text, 1). Fast (about 0.1 s per million rows), but the
  server's hash depends on its byte order, so `method_probe()` records the hash of
  a fixed string: when the target's probe differs, compare row counts only.
- "md5-rowsum-v1" (any version, about 10x slower): a, b = the two halves of
  md5(r::text) as signed 64-bit integers.

A row's text form depends on session settings, so `table_facts` fixes them on the
connection first (session level): TimeZone, DateStyle, IntervalStyle,
extra_float_digits, bytea_output, lc_monetary and search_path (so regclass values
come out schema-qualified). The same method on the target gives the same value
when the data is the same (with the same encoding; float text is stable from
PostgreSQL 12 on).

Tables are `relkind = 'r'` outside the system schemas, not members of an extension,
named schema-qualified and quoted as SQL would (`public.items`, `app."Order"`),
counted with ONLY so inheritance children and partitions count for themselves.

This module needs only a DB-API connection (psycopg2, passed in) and Python 3.9:
the builder uses it for the dump and the installer, on the target, for the
restore's check and the import's audit (one module, no copies).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

HASHTEXT = "hashtext-rowsum-v1"
MD5 = "md5-rowsum-v1"

SESSION_SETTINGS = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
    ("lc_monetary", "C"),
    ("search_path", "pg_catalog"),
)

TABLES_SQL = r"""
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname <> 'information_schema'
  AND n.nspname !~ '^pg_(catalog$|toast|temp_)'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND d.objid = c.oid AND d.deptype = 'e')
"""

# {table} is a name from TABLES_SQL, already quoted by the server's format('%I').
TABLE_SQL = {
    HASHTEXT: """
SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0),
       coalesce(sum(hashtextextended(t::text, 1)), 0)
FROM ONLY {table} AS t""",
    MD5: """
SELECT count(*),
       coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint), 0),
       coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint), 0)
FROM (SELECT md5(t::text) AS h FROM ONLY {table} AS t) AS rows""",
}
PROBE_SQL = {
    HASHTEXT: "SELECT hashtextextended('satchel', 0)::text",
    MD5: "SELECT md5('satchel')",
}

DATABASE_SQL = """
SELECT current_setting('server_version'),
       current_setting('server_version_num')::int,
       pg_catalog.pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
       pg_catalog.pg_get_userbyid(d.datdba)
FROM pg_catalog.pg_database d WHERE d.datname = current_database()
"""


def set_session(conn: Any) -> None:
    with conn.cursor() as cur:
        for name, value in SESSION_SETTINGS:
            cur.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))


def table_names(conn: Any) -> List[str]:
    with conn.cursor() as cur:
        cur.execute(TABLES_SQL)
        return sorted(row[0] for row in cur.fetchall())


def choose_method(conn: Any) -> str:
    """The fastest checksum method the server has."""
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('server_version_num')::int")
        return HASHTEXT if cur.fetchone()[0] >= 110000 else MD5


def method_probe(conn: Any, method: str) -> str:
    """The method's hash of a fixed string on this server: equal probes, comparable sums."""
    with conn.cursor() as cur:
        cur.execute(PROBE_SQL[method])
        return str(cur.fetchone()[0])


def table_facts(conn: Any, method: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
    """{"schema.table": {"rows": int, "checksum": str}} for every user table, sorted.

    Runs in the connection's current transaction (so, inside a REPEATABLE READ
    transaction that exported a snapshot for pg_dump, it sees what the dump sees).
    `method` defaults to `choose_method(conn)`; the import passes the manifest's.
    """
    if method is None:
        method = choose_method(conn)
    if method not in TABLE_SQL:
        raise ValueError(f"unknown checksum method {method!r}")
    set_session(conn)
    facts: Dict[str, Dict[str, Any]] = {}
    with conn.cursor() as cur:
        for name in table_names(conn):
            cur.execute(TABLE_SQL[method].format(table=name))
            rows, a, b = cur.fetchone()
            facts[name] = {"rows": int(rows),
                           "checksum": f"{int(a) % 2**64:016x}{int(b) % 2**64:016x}"}
    return facts


def database_facts(conn: Any) -> Dict[str, Any]:
    """Server version (full and major), encoding, collation, ctype and owner of the
    database."""
    with conn.cursor() as cur:
        cur.execute(DATABASE_SQL)
        version, num, encoding, collate, ctype, owner = cur.fetchone()
    major = num // 10000  # 150020 -> 15 (a 9.x server gives 9)
    return {"server_version": version, "server_major": major,
            "encoding": encoding, "collation": collate, "ctype": ctype, "owner": owner}
