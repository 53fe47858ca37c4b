"""The audit's second look at a restored database, after the commit: per-table row
counts against the manifest's (installer.restore.database.row_counts)."""

from __future__ import annotations

import pytest

from bundler.pgcluster import Cluster
from installer.restore import database as restore_db

pytestmark = pytest.mark.postgres


def _params(cluster: Cluster) -> restore_db.ConnParams:
    line = cluster.passfile.read_text().splitlines()[0]
    password = line.split(":", 4)[4].replace("\\:", ":").replace("\\\\", "\\")
    return restore_db.ConnParams(host=cluster.host, port=cluster.port,
                                 user=cluster.superuser, password=password)


def test_row_counts_are_compared_with_the_manifest(pg_cluster: Cluster, pg_db: str) -> None:
    pg_cluster.run_sql(pg_db, 'CREATE SCHEMA s; CREATE TABLE s."Odd" (x int); '
                              "CREATE TABLE public.t (x int); "
                              'INSERT INTO s."Odd" SELECT generate_series(1, 7);')
    counts = restore_db.row_counts(_params(pg_cluster), pg_db)
    assert counts == {'s."Odd"': 7, "public.t": 0}
    entry = {"tables": {'s."Odd"': {"rows": 7, "checksum": "x"},
                        "public.t": {"rows": 0, "checksum": "y"}}}
    assert restore_db.count_problems(entry, counts) == []
    pg_cluster.run_sql(pg_db, 'DELETE FROM s."Odd" WHERE x > 5; CREATE TABLE public.u (x int)')
    entry["tables"]["public.gone"] = {"rows": 1, "checksum": "z"}
    assert restore_db.count_problems(entry, restore_db.row_counts(_params(pg_cluster), pg_db)) \
        == ["public.gone: missing", 'public.u: not in the bundle',
            's."Odd": 5 rows, the bundle has 7']
