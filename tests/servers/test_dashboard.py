"""The web dashboard over real HTTP on loopback: tokens, cookies, its data, its pages.

The server is uvicorn in a thread serving `build_dashboard` over a real search (a SQLite file);
trials are written with the store's own API while it runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from lineage.models import Outcome
from lineage.state import StateDir
from servers.auth import load_tokens, viewer_token
from servers.dashboard import build_dashboard
from servers.dashboard._gate import cookie_value
from tests.servers.dashboard_feed import make_search, record, serving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def search(tmp_path: Path) -> Iterator[StateDir]:
    sd = make_search(tmp_path / "state")
    record(sd, "opt", "LR", "0.003", score=1.95)
    record(sd, "arch", "HIDDEN", "128", score=1.80, parent=1,
           hypothesis="narrower: <script>alert('x')</script> & <b>bold</b>")
    record(sd, "reg", "WEIGHT_DECAY", "0.001", status="crash", parent=2)
    yield sd
    sd.close()


@pytest.fixture
def url(search: StateDir) -> Iterator[str]:
    app, sources = build_dashboard([search.path], min_interval=0)
    with serving(app) as base:
        yield base
    sources.close()


def client(base: str, **kw: object) -> httpx2.Client:
    return httpx2.Client(base_url=base, follow_redirects=False, timeout=20, **kw)  # type: ignore[arg-type]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_without_a_token_every_page_and_api_is_401_saying_how_to_get_in(url: str, search: StateDir) -> None:
    with client(url) as c:
        page = c.get("/")
        api = c.get("/api/s/state/summary")
        wrong = c.get("/?token=not-the-token")
        wrong_bearer = c.get("/api/s/state/summary", headers=bearer("nope"))
        trial = c.get("/s/state/trial/1")
    assert page.status_code == 401 and "needs a token" in page.text and "autoresearch tokens --state" in page.text
    assert api.status_code == 401 and api.json()["error"] == "unauthorized" and "autoresearch tokens" in api.json()["detail"]
    assert str(search.path) not in api.text + page.text  # a 401 does not tell strangers where the search lives
    assert wrong.status_code == 401 and "wrong" in wrong.text and "set-cookie" not in wrong.headers
    assert wrong_bearer.status_code == 401 and "bearer token is wrong" in wrong_bearer.json()["detail"]
    assert trial.status_code == 401


def test_the_token_in_the_address_becomes_an_httponly_cookie_and_leaves_the_address(url: str, search: StateDir) -> None:
    token = viewer_token(search.path)
    with client(url) as c:
        first = c.get("/s/state/?token=" + token + "&x=1")
        cookie = first.headers["set-cookie"]
        page = c.get("/")
        data = c.get("/api/s/state/summary")
    assert first.status_code == 303 and first.headers["location"] == "/s/state/?x=1"
    assert token not in cookie and cookie_value(token) in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and first.headers["cache-control"] == "no-store"
    assert page.status_code == 200 and 'data-api="/api/s/state"' in page.text
    assert data.status_code == 200 and data.json()["header"]["search"] == "state"
    with client(url) as c:  # the cookie's value is no token: it cannot be replayed as one
        assert c.get("/api/s/state/summary", headers=bearer(cookie_value(token))).status_code == 401


def test_specialists_tokens_open_it_too_and_every_response_keeps_the_page_to_itself(url: str, search: StateDir) -> None:
    with client(url) as c:
        r = c.get("/api/s/state/summary", headers=bearer(load_tokens(search.path)["opt"]))
        js = c.get("/static/app.js")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert r.headers["referrer-policy"] == "no-referrer" and r.headers["x-frame-options"] == "DENY"
    assert js.status_code == 200 and "textContent" in js.text  # the page's code is public; the data is not


def test_summary_holds_what_the_header_and_panels_show(url: str, search: StateDir) -> None:
    with client(url, headers=bearer(viewer_token(search.path))) as c:
        s = c.get("/api/s/state/summary").json()
    h = s["header"]
    assert (h["task"], h["metric"], h["unit"], h["lower_is_better"], h["arm"]) == ("digits-speedrun", "train_s", "CPU-s", True, "roles")
    assert (h["best_exp"], h["best"], h["baseline"], h["spread"], h["trials"]) == (2, 1.8, 2.0, 0.035, 3)
    assert h["margin"] == pytest.approx(0.07) and h["status_counts"] == {"crash": 1, "discard": 1, "keep": 1}
    assert (h["calibrated"], h["backend"]) == ({}, "local")  # a given baseline records no calibrated settings
    assert s["best_series"]["exp"] == [0, 2] and s["best_series"]["score"] == [2.0, 1.8]
    assert [r["exp"] for r in s["leaderboard"]] == [2, 0]
    assert [(n["exp"], n["children"]) for n in s["tree"]] == [(0, 1), (1, 1), (2, 1)]
    assert [r["exp"] for r in s["recent"]] == [3, 2, 1] and "shapes do not match" in s["recent"][0]["note"]
    by_name = {p["name"]: p for p in s["specialists"]}
    assert by_name["reg"]["failures"] == {"crash": 1} and by_name["reg"]["recent"] == [[3, "crash"]]
    assert by_name["arch"]["keeps"] == 1 and set(by_name) == {"arch", "aug", "loss", "opt", "reg"}
    assert sum(sum(v) for v in s["timeline"]["counts"].values()) == 3


def test_the_version_moves_only_when_the_lineage_changes(url: str, search: StateDir) -> None:
    with client(url, headers=bearer(viewer_token(search.path))) as c:
        first = c.get("/api/s/state/summary")
        etag = first.headers["etag"]
        same = c.get("/api/s/state/summary", headers={"if-none-match": etag})
        queued = record(search, "loss", "LABEL_SMOOTHING", "0.1", parent=2, finish=False)
        record(search, "aug", "EPOCHS", "20", parent=2, finish=False)
        moved = c.get("/api/s/state/summary", headers={"if-none-match": etag})
    assert same.status_code == 304 and same.content == b""
    assert moved.status_code == 200 and moved.headers["etag"] != etag
    body = moved.json()
    assert [(f["exp"], f["status"], f["queue"]) for f in body["inflight"]] == [(queued.exp_id, "queued", 0), (5, "queued", 1)]
    assert body["header"]["trials"] == 5 and body["recent"][0]["exp"] == 5


def test_points_page_through_every_finished_trial(url: str, search: StateDir) -> None:
    for i in range(5):
        record(search, "opt", "LR", f"0.00{i + 4}", score=2.1 + i / 10, parent=2)
    with client(url, headers=bearer(viewer_token(search.path))) as c:
        pages, start = [], 0
        while True:
            p = c.get(f"/api/s/state/points?start={start}&limit=3").json()
            pages.append(p)
            if p["next"] >= p["total"]:
                break
            start = p["next"]
        bad = c.get("/api/s/state/points?start=abc")
    exps = [e for p in pages for e in p["exp"]]
    assert sorted(exps) == list(range(1, 9)) and len(pages) == 3
    names = pages[0]["statuses"]
    crash = [names[s] for p in pages for e, s in zip(p["exp"], p["status"]) if e == 3]
    assert crash == ["crash"] and None in pages[0]["score"]  # the crash has no score: null, not NaN
    assert bad.status_code == 400 and "start must be an integer" in bad.text


def test_children_come_in_pages(url: str, search: StateDir) -> None:
    for i in range(4):
        record(search, "aug", "EPOCHS", str(20 + i), score=2.2, parent=2)
    with client(url, headers=bearer(viewer_token(search.path))) as c:
        first = c.get("/api/s/state/children/2?limit=3").json()
        rest = c.get("/api/s/state/children/2?offset=3&limit=3").json()
    assert [k["exp"] for k in first["children"]] == [3, 4, 5] and first["more"]
    assert [k["exp"] for k in rest["children"]] == [6, 7] and not rest["more"]


def test_trial_page_shows_text_as_text_and_a_highlighted_bounded_diff(url: str, search: StateDir) -> None:
    with client(url, headers=bearer(viewer_token(search.path))) as c:
        page = c.get("/s/state/trial/2")
        missing = c.get("/s/state/trial/99")
        status = c.get("/api/s/state/trial/2").json()
    html = page.text
    assert page.status_code == 200 and "<script>alert" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    added = re.findall(r'<tr class="add">(.*?)</tr>', html)
    assert any("HIDDEN" in row and "128" in row and "<span class=" in row for row in added)  # Pygments tokens
    assert re.search(r'<tr class="del">.*?HIDDEN.*?256', html)
    assert "against its parent exp 001" in html and "against the best" not in html  # it is the best
    assert "NVIDIA H200" in html and "2.900 s" in html and "train_s_per_seed" in html  # env, CPU time, metrics
    assert missing.status_code == 404 and "no trial exp 99" in missing.text
    assert status == {"exp": 2, "status": "keep", "finished": True}


def test_a_failed_trials_page_shows_its_failure_and_the_end_of_its_log(url: str, search: StateDir) -> None:
    t = search.store.create_trial(search.search_id, specialist="reg", parent_exp=2, hypothesis="h")
    search.store.claim_trial(search.search_id, "test-worker", exp_id=t.exp_id)
    tail = "step 1 loss 2.3\nTraceback (most recent call last):\n<frame>\nRuntimeError: CUDA out of memory"
    search.store.finish_trial(search.search_id, t.exp_id, Outcome(status="crash", failure="RuntimeError: CUDA out of memory",
                                                                  log_tail=tail))
    with client(url, headers=bearer(viewer_token(search.path))) as c:
        html = c.get(f"/s/state/trial/{t.exp_id}").text
    assert '<p class="failure">RuntimeError: CUDA out of memory</p>' in html
    assert "<h3>Log tail</h3>" in html and "step 1 loss 2.3\nTraceback" in html and "&lt;frame&gt;" in html


def test_a_stopped_search_says_why(url: str, search: StateDir) -> None:
    store, sid = search.store, search.search_id
    store.record_event(sid, "run_start")
    store.record_event(sid, "specialist_paused", specialist="aug", payload={"reason": "5 empty sessions"})
    store.record_event(sid, "stop_requested", payload={"reason": "trial budget reached"})
    with client(url, headers=bearer(viewer_token(search.path))) as c:
        stopping = c.get("/api/s/state/summary").json()["header"]
        store.record_event(sid, "run_end", payload={"reason": "trial budget reached"})
        stopped = c.get("/api/s/state/summary").json()["header"]
    assert (stopping["state"], stopping["stop_reason"]) == ("stopping", "trial budget reached")
    assert stopping["paused"] == {"aug": "5 empty sessions"}
    assert (stopped["state"], stopped["stop_reason"]) == ("stopped", "trial budget reached")


def test_several_searches_open_on_their_comparison(tmp_path: Path, search: StateDir) -> None:
    other = make_search(tmp_path / "other")
    record(other, "opt", "LR", "0.004", score=1.9)
    app, sources = build_dashboard([search.path, other.path], min_interval=0)
    with serving(app) as base, client(base, headers=bearer(viewer_token(other.path))) as c:
        home = c.get("/")
        data = c.get("/api/compare").json()
        one = c.get("/s/other/")
    sources.close()
    other.close()
    assert home.status_code == 200 and "compare.js" in home.text
    assert [s["label"] for s in data["searches"]] == ["state", "other"]
    assert data["groups"][0]["n"] == 2 and data["groups"][0]["figures"]["best"]["lo"] is not None
    assert one.status_code == 200 and 'data-api="/api/s/other"' in one.text


@pytest.mark.postgres
def test_the_dashboard_reads_a_postgresql_lineage(tmp_path: Path, pg_url: str) -> None:
    sd = make_search(tmp_path / "pg", database_url=pg_url)
    record(sd, "opt", "LR", "0.003", score=1.9)
    record(sd, "arch", "HIDDEN", "64", parent=1, finish=False)
    app, sources = build_dashboard([sd.path], min_interval=0)
    with serving(app) as base, client(base, headers=bearer(viewer_token(sd.path))) as c:
        s = c.get("/api/s/pg/summary").json()
        points = c.get("/api/s/pg/points").json()
        page = c.get("/s/pg/trial/1")
    sources.close()
    sd.close()
    assert (s["header"]["best_exp"], s["header"]["trials"]) == (1, 2)
    assert [f["exp"] for f in s["inflight"]] == [2] and points["exp"] == [1]
    assert points["t"][0] is not None and abs(points["t"][0] - s["best_series"]["t"][1]) < 1e-3
    assert page.status_code == 200 and re.search(r'<tr class="add">.*?LR.*?0\.003', page.text)


def test_the_header_names_the_calibrated_settings_and_the_backend(tmp_path: Path, search: StateDir) -> None:
    cfg = search.search.config.model_copy(update={"calibrated_env": {"NANOCHAT_TRAIN_S": "2875"},
                                                   "backend": "slurm", "backend_options": {"partition": "gpu"}})
    search.store.update_search_config(search.search_id, cfg)
    app, sources = build_dashboard([search.path], min_interval=0)
    with serving(app) as base, client(base, headers=bearer(viewer_token(search.path))) as c:
        h = c.get("/api/s/state/summary").json()["header"]
    sources.close()
    assert (h["calibrated"], h["backend"]) == ({"NANOCHAT_TRAIN_S": "2875"}, "slurm")
