"""A psycopg client driven by the server tests (tests/it/serve_pg.rs), one JSON request per line
on standard input, one JSON answer per line on standard output:

  {"op": "connect", "dsn": "...", "autocommit": true}
  {"op": "query", "sql": "...", "params": [...], "binary": false}
      -> {"ok": true, "columns": [[name, type oid]...], "rows": [[...]...]}
      or {"ok": false, "sqlstate": "...", "error": "..."}  (the transaction is rolled back)
  {"op": "load", "dsn": "...", "clients": 20, "seconds": 30, "cases": [[sql, params]...]}
      -> {"ok": true, "expected": [rows...], "queries": n, "wrong": [...], "errors": [...]}
     each case's expected rows are its answer on one connection before the load (kept here:
     passing floats through another JSON parser could change their last digit)
"""

import json
import sys
import threading
import time

import psycopg


def plain(v):
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)


def run(conn, sql, params, binary):
    with conn.cursor(binary=binary) as cur:
        cur.execute(sql, params or None)
        columns = [[d.name, d.type_code] for d in (cur.description or [])]
        rows = [[plain(v) for v in r] for r in cur.fetchall()] if cur.description else []
    return {"ok": True, "columns": columns, "rows": rows}


def load(dsn, clients, seconds, cases):
    with psycopg.connect(dsn, autocommit=True) as conn:
        cases = [(sql, params, run(conn, sql, params, False)["rows"]) for sql, params in cases]
    counts = [0] * clients
    wrong = []
    errors = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(i):
        try:
            conn = psycopg.connect(dsn, autocommit=True)
        except Exception as e:  # noqa: BLE001 - reported to the test
            with lock:
                errors.append(f"connect: {e}")
            return
        k = i
        while time.monotonic() < stop:
            sql, params, want = cases[k % len(cases)]
            k += 1
            try:
                got = run(conn, sql, params, k % 2 == 0)["rows"]
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append(str(e))
                continue
            counts[i] += 1
            if got != want:
                with lock:
                    diff = next(([g, w] for g, w in zip(got, want) if g != w), None)
                    wrong.append([sql, params, len(got), len(want), k % 2 == 0, diff])
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"ok": True, "expected": [c[2] for c in cases], "queries": sum(counts), "per_client": counts, "wrong": wrong[:5],
            "n_wrong": len(wrong), "errors": errors[:5], "n_errors": len(errors)}


def main():
    conn = None
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["op"] == "connect":
                conn = psycopg.connect(req["dsn"], autocommit=req.get("autocommit", False))
                out = {"ok": True}
            elif req["op"] == "query":
                out = run(conn, req["sql"], req.get("params"), req.get("binary", False))
            elif req["op"] == "load":
                out = load(req["dsn"], req["clients"], req["seconds"], req["cases"])
            else:
                out = {"ok": False, "error": f"unknown op {req['op']}"}
        except psycopg.Error as e:
            out = {"ok": False, "sqlstate": e.sqlstate, "error": str(e)}
            if conn is not None and not conn.closed and not conn.autocommit:
                conn.rollback()
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
