"""The dashboard at months of history: server time and response size of every callback, for every
range the UI offers, through the running production server (``moodwire dashboard``, waitress).

The store is built once with the project's own writers (bench/dashboard_store.py) and cached
outside the repository (``--cache``, default ~/.cache/moodwire-bench); building is timed and
reported. Each callback is posted as the browser posts it (``/_dash-update-component``, signed
in), ``--requests`` times; median and p95 wall time (loopback: server time plus a small
constant) and the response size are printed, with the goal (p95 ≤ 300 ms, ≤ 500 KB).

    python bench/bench_dashboard.py --days 90 [--per-hour 300] [--requests 20]
    python bench/bench_dashboard.py --days 365 --store postgresql+psycopg://…   # build into PostgreSQL
    python bench/bench_dashboard.py --days 90 --clients 20 --minutes 2   # concurrent signed-in clients

``--clients N``: instead of the per-callback table, N signed-in clients (each its own session)
refresh a page every 10 s for ``--minutes`` — the overview, a topic page and the alerts page in
turn, each refresh the callbacks the browser sends for it — and the latency p50/p95/max and
the errors are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.dashboard_store import build, now_hour  # noqa: E402
from dashboards import ids  # noqa: E402
from moodwire.broker import free_port  # noqa: E402

# Each callback measured: an output that picks it out of the app's own dependency list (what
# the browser reads from /_dash-dependencies, so the list cannot go stale as the app changes)
# and what its page adds to the query.
CALLBACKS = {
    "overview": ((ids.OVERVIEW_TABLE, "data"), ""),
    "topic trend": ((ids.TREND, "figure"), "&topic=Macro"),
    "watchlist trend": ((ids.TREND, "figure"), "&topic=watchlist%3AUK+sovereign"),
    "headlines": ((ids.HEADLINES, "children"), "&topic=Macro"),
    "alerts": ((ids.ALERT_LIST, "children"), ""),
    "retention note": ((ids.RETENTION_NOTE, "children"), ""),
}
# The values a page load gives its inputs besides the query (anything else: None, as in a browser)
LOADED = {(ids.TICK, "n_intervals"): 1, (ids.REVISION, "data"): 0}


def ranges(end, days: int) -> dict[str, str]:
    out = {"1h": "?range=1h", "24h": "?range=24h", "7d": "?range=7d"}
    for span in (30, 90, 365):
        if span <= days:
            start = (end - timedelta(days=span)).strftime("%Y-%m-%dT%H:%M")
            out[f"custom {span}d"] = f"?range=custom&start={start}&end={end.strftime('%Y-%m-%dT%H:%M')}"
    return out


def _outputs(output: str) -> list[tuple[str, str]]:
    """(id, property) of each output in Dash's output string ("a.b", or "..a.b...c.d..")."""
    return [tuple(part.split("@")[0].rsplit(".", 1)) for part in output.strip(".").split("...")]


def dependencies(session, base: str) -> dict[str, dict]:
    """Each of CALLBACKS' callbacks as the app declares it."""
    declared = session.get(base + "/_dash-dependencies", timeout=30).json()
    out = {}
    for name, (output, _) in CALLBACKS.items():
        found = [d for d in declared if output in _outputs(d["output"])]
        if len(found) != 1:
            raise SystemExit(f"the app has {len(found)} callbacks with output {output[0]}.{output[1]}: "
                             "update CALLBACKS in bench/bench_dashboard.py")
        out[name] = found[0]
    return out


def payload(dependency: dict, search: str) -> dict:
    """The body the browser posts for ``dependency`` on a page loaded at ``search``."""
    def value(entry):
        key = (entry["id"], entry["property"])
        return search if key == (ids.URL, "search") else LOADED.get(key)

    outputs = [{"id": i, "property": p} for i, p in _outputs(dependency["output"])]
    return {"output": dependency["output"], "outputs": outputs if len(outputs) > 1 else outputs[0],
            "inputs": [{**entry, "value": value(entry)} for entry in dependency["inputs"]],
            "state": [{**entry, "value": value(entry)} for entry in dependency["state"]],
            "changedPropIds": [f"{ids.URL}.search"]}


def serve(store: str, home: Path) -> tuple[subprocess.Popen, str, callable]:
    from dashboards.passwords import hash_password

    users = home / "users.yaml"
    users.write_text(f"users:\n  bench: '{hash_password('bench password', iterations=1_000)}'\n")
    port = free_port()
    env = {**os.environ, "MOODWIRE_HOME": str(home), "MOODWIRE_STORE_URL": store,
           "MOODWIRE_DASHBOARD_USERS": str(users), "MOODWIRE_DASHBOARD_PORT": str(port), "MOODWIRE_LOG_LEVEL": "WARNING"}
    log = home / "dashboard.log"
    proc = subprocess.Popen([sys.executable, "-m", "moodwire_cli", "dashboard"], env=env, cwd=ROOT,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            requests.get(base + "/healthz", timeout=1)
            break
        except requests.ConnectionError:
            if proc.poll() is not None:
                raise SystemExit(f"the dashboard exited: {log.read_text()[-2000:]}")
            time.sleep(0.2)

    def sign_in() -> requests.Session:
        import re

        session = requests.Session()
        token = re.search(r'name="csrf" value="([^"]+)"', session.get(base + "/login", timeout=30).text).group(1)
        signed = session.post(base + "/login", data={"username": "bench", "password": "bench password",
                                                     "csrf": token}, allow_redirects=False, timeout=30)
        assert signed.status_code == 302, signed.text[:300]
        return session

    return proc, base, sign_in


def measure(session, base: str, body: dict, n: int) -> dict:
    times, size = [], 0
    for _ in range(n):
        started = time.perf_counter()
        answer = session.post(base + "/_dash-update-component", json=body, timeout=120)
        times.append(time.perf_counter() - started)
        if answer.status_code != 200:
            raise SystemExit(f"{body['output']}: HTTP {answer.status_code}: {answer.text[:500]}")
        size = len(answer.content)
    times.sort()
    return {"median_ms": 1000 * statistics.median(times), "p95_ms": 1000 * times[max(0, int(0.95 * n) - 1)],
            "kb": size / 1024}


PAGES = [["overview", "retention note"], ["topic trend", "headlines", "retention note"], ["alerts", "retention note"]]


def load(base: str, sign_in, clients: int, minutes: float, search: str) -> int:
    """``clients`` threads, each signed in, refreshing a page every 10 s for ``minutes``."""
    import threading

    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + minutes * 60

    declared = dependencies(sign_in(), base)

    def client(k: int) -> None:
        session = sign_in()
        page = k % len(PAGES)
        time.sleep(10 * k / clients)  # spread the clients over the refresh interval
        while time.monotonic() < stop:
            started = time.monotonic()
            for name in PAGES[page]:
                body = payload(declared[name], search + CALLBACKS[name][1])
                t0 = time.perf_counter()
                try:
                    answer = session.post(base + "/_dash-update-component", json=body, timeout=60)
                    ok = answer.status_code == 200
                    problem = f"{name}: HTTP {answer.status_code}: {answer.text[:200]}"
                except requests.RequestException as exc:
                    ok, problem = False, f"{name}: {exc}"
                with lock:
                    times.append(time.perf_counter() - t0)
                    if not ok:
                        errors.append(problem)
            page = (page + 1) % len(PAGES)
            time.sleep(max(0.0, 10 - (time.monotonic() - started)))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times.sort()
    p = lambda q: 1000 * times[min(len(times) - 1, int(q * len(times)))]  # noqa: E731
    print(f"{clients} clients, {minutes:g} min, range {search}: {len(times)} callbacks, p50 {p(0.5):.0f} ms, "
          f"p95 {p(0.95):.0f} ms, max {1000 * times[-1]:.0f} ms, errors {len(errors)}"
          + (f" (first: {errors[0]})" if errors else ""))
    return len(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90, help="history in the store")
    parser.add_argument("--per-hour", type=int, default=300, help="headlines an hour (over 20 topics)")
    parser.add_argument("--requests", type=int, default=20, help="requests per callback and range")
    parser.add_argument("--store", default=None, help="SQLAlchemy URL to build into and read [default: a cached "
                                                      "SQLite file under --cache]")
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "moodwire-bench"))
    parser.add_argument("--build-only", action="store_true", help="build (or find) the store, measure nothing")
    parser.add_argument("--clients", type=int, default=0, help="load test: this many concurrent signed-in clients")
    parser.add_argument("--minutes", type=float, default=2.0, help="load test: how long")
    parser.add_argument("--range", dest="load_range", default="?range=24h", help="load test: the page's range")
    opts = parser.parse_args()
    cache = Path(opts.cache)
    cache.mkdir(parents=True, exist_ok=True)
    name = f"store-{opts.days}d-{opts.per_hour}h"
    if opts.store:  # a server's store: remembered by its address
        import hashlib

        name += "-" + hashlib.sha256(opts.store.encode()).hexdigest()[:12]
    meta_file = cache / f"{name}.json"
    store = opts.store or f"sqlite:///{cache / f'{name}.db'}"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else None
    if meta is None:
        end = now_hour()
        print(f"building {opts.days} days at {opts.per_hour} headlines/hour into {store.split('@')[-1]} …",
              flush=True)
        meta = {**build(store, end, opts.days, opts.per_hour), "end": end.isoformat()}
        meta_file.write_text(json.dumps(meta))
        print(f"built: {meta['items']} items, {meta['windows']} windows, {meta['episodes']} alert episodes in "
              f"{meta['build_s']:.0f} s", flush=True)
    else:
        print(f"cached store: {meta['items']} items, {meta['windows']} windows (built in {meta['build_s']:.0f} s)")
    if store.startswith("sqlite:///"):
        print(f"store size: {Path(store[len('sqlite:///'):]).stat().st_size / 2**20:.0f} MB")
    if opts.build_only:
        return
    from datetime import datetime

    end = datetime.fromisoformat(meta["end"])
    worst = {"p95_ms": 0.0, "kb": 0.0}
    with tempfile.TemporaryDirectory() as home:
        proc, base, sign_in = serve(store, Path(home))
        try:
            if opts.clients:
                if load(base, sign_in, opts.clients, opts.minutes, opts.load_range):
                    raise SystemExit(1)
                return
            session = sign_in()
            declared = dependencies(session, base)
            print(f"{'callback':16s} {'range':12s} {'median ms':>10s} {'p95 ms':>8s} {'KB':>8s}")
            for name, (_, page) in CALLBACKS.items():
                for label, search in ranges(end, opts.days).items():
                    body = payload(declared[name], search + page)
                    measure(session, base, body, 1)  # warm: the first call builds caches
                    r = measure(session, base, body, opts.requests)
                    worst = {"p95_ms": max(worst["p95_ms"], r["p95_ms"]), "kb": max(worst["kb"], r["kb"])}
                    print(f"{name:16s} {label:12s} {r['median_ms']:10.0f} {r['p95_ms']:8.0f} {r['kb']:8.0f}", flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"worst p95 {worst['p95_ms']:.0f} ms (goal ≤ 300), largest response {worst['kb']:.0f} KB (goal ≤ 500): "
          f"{'met' if worst['p95_ms'] <= 300 and worst['kb'] <= 500 else 'missed'}")


if __name__ == "__main__":
    main()
