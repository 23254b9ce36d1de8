#!/usr/bin/env python3
"""The DuckDB reference of the segments benchmark.

Loads tourists.csv and purchases.csv from DIR (exported by the benchmark from the rows tabiji
stored, text columns as SQLite keeps them), then runs the count and first-page statements of
DIR/queries.json ({"count": {"sql", "params"}, "page": {...}}) REPEAT times after one warm-up.
Prints {"count": n, "count_ms": median, "page_ms": median}.
"""
import json
import statistics
import sys
import time

try:
    import duckdb
except ImportError:
    sys.exit("DuckDB is not installed: pip install duckdb (scripts/bench/segments does this)")

folder, repeat = sys.argv[1], int(sys.argv[2])
queries = json.load(open(f"{folder}/queries.json"))
db = duckdb.connect()
db.execute(
    f"""CREATE TABLE tourists AS SELECT * FROM read_csv('{folder}/tourists.csv', header = true,
        columns = {{'id': 'BIGINT', 'email': 'VARCHAR', 'prefecture': 'VARCHAR', 'gender': 'VARCHAR',
                    'birth_date': 'VARCHAR', 'total_spend': 'BIGINT'}})"""
)
db.execute(
    f"""CREATE TABLE purchases AS SELECT * FROM read_csv('{folder}/purchases.csv', header = true,
        columns = {{'tourist_id': 'BIGINT', 'occurred_at': 'VARCHAR', 'amount': 'BIGINT'}})"""
)


def timed(query):
    db.execute(query["sql"], query["params"]).fetchall()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        rows = db.execute(query["sql"], query["params"]).fetchall()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), rows


count_ms, rows = timed(queries["count"])
page_ms, _ = timed(queries["page"])
print(json.dumps({"count": rows[0][0], "count_ms": count_ms, "page_ms": page_ms}))
