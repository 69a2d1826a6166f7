"""The labelling app's HTTP API, in-process: the labelling flow, idempotent submits,
4xx answers (never a 500 or a half-written row) for malformed requests, escaping."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from rlhf_envs.feedback.app import MAX_BODY, create_app
from rlhf_envs.feedback.pairs import PairSource
from rlhf_envs.feedback.store import FeedbackStore

PAYLOAD = '<script>document.title="pwned"</script><img src=x onerror="alert(1)">'


@pytest.fixture
def app(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    source = PairSource(store, "RLHF-Chat-v0", mode="random", overlap=0.0, seed=3)
    # Open access (names typed in, no tokens): the API as one person on their own machine
    # uses it; access control has tests of its own below.
    client = TestClient(
        create_app(store, source, open_access=True, allowed_hosts=("testserver",)),
        raise_server_exceptions=False,
    )
    yield client, store
    source.close()
    store.close()


def _register(client, name="Ada"):
    r = client.post("/api/annotators", json={"name": name})
    assert r.status_code == 200, r.text
    return r.json()["annotator_id"]


def test_labelling_flow_stores_labels_and_counts_progress(app):
    client, store = app
    me = _register(client)
    for n, choice in enumerate(["a", "b", "tie", "skip", "a"]):
        item = client.get("/api/next", params={"annotator_id": me}).json()
        assert item["turns"] and item["turns"][0]["role"] == "user"
        assert item["reply_a"] != item["reply_b"]
        assert item["progress"]["yours"] == n
        r = client.post(
            "/api/labels",
            json={
                "label_id": item["label_id"],
                "comparison_id": item["comparison_id"],
                "annotator_id": me,
                "choice": choice,
                "seconds": 1.5,
            },
        )
        assert r.status_code == 201 and r.json()["stored"] is True
    assert [row["choice"] for row in store.labels()] == ["a", "b", "tie", "skip", "a"]
    assert client.get("/api/progress", params={"annotator_id": me}).json()["yours"] == 5
    comparison = store.comparison(store.labels()[0]["comparison_id"])
    assert comparison.env_id == "RLHF-Chat-v0" and comparison.seed is not None
    assert "gold_margin" in comparison.metadata


def test_a_form_sent_twice_stores_one_label(app):
    client, store = app
    me = _register(client)
    item = client.get("/api/next", params={"annotator_id": me}).json()
    body = {
        "label_id": item["label_id"],
        "comparison_id": item["comparison_id"],
        "annotator_id": me,
        "choice": "b",
    }
    first, second = client.post("/api/labels", json=body), client.post("/api/labels", json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["duplicate"] is True
    changed = client.post("/api/labels", json={**body, "choice": "a"})
    assert changed.status_code == 409 and "already used" in changed.json()["error"]
    assert store.counts()["labels"] == 1


def test_rating_mode_thumbs_and_stars(app):
    client, store = app
    me = _register(client)
    for scale, value in (("thumbs", 1), ("stars", 4), ("thumbs", 0)):
        item = client.get("/api/next-rating", params={"annotator_id": me, "scale": scale}).json()
        assert item["reply"] and item["scale"] == scale
        r = client.post(
            "/api/ratings",
            json={
                "label_id": item["label_id"],
                "item_id": item["item_id"],
                "annotator_id": me,
                "scale": scale,
                "value": value,
            },
        )
        assert r.status_code == 201, r.text
    assert sorted((r.scale, r.label) for r in store.ratings()) == [
        ("stars", 4),
        ("thumbs", 0),
        ("thumbs", 1),
    ]


BAD_LABELS = [
    ({"choice": "maybe"}, 422, "choice"),
    ({"choice": None}, 422, "choice"),
    ({"comparison_id": "1"}, 422, "comparison_id"),
    ({"comparison_id": 10_000}, 404, "no comparison with id 10000"),
    ({"comparison_id": 2**70}, 422, "comparison_id"),
    ({"comparison_id": 0}, 422, "comparison_id"),
    ({"annotator_id": "ann-unknown"}, 404, "unknown annotator"),
    ({"label_id": "x"}, 422, "label_id"),
    ({"label_id": "bad id with spaces"}, 400, "label_id must be"),
    ({"label_id": "abcdefgh\n"}, 400, "label_id must be"),
    ({"seconds": -1}, 422, "seconds"),
    ({"reason": "r" * 2001}, 422, "reason"),
    ({"extra": 1}, 422, "extra"),
]


@pytest.mark.parametrize("change, status, message", BAD_LABELS, ids=[m for _, _, m in BAD_LABELS])
def test_malformed_labels_get_4xx_and_write_nothing(app, change, status, message):
    client, store = app
    me = _register(client)
    item = client.get("/api/next", params={"annotator_id": me}).json()
    body = {
        "label_id": item["label_id"],
        "comparison_id": item["comparison_id"],
        "annotator_id": me,
        "choice": "a",
        **change,
    }
    r = client.post("/api/labels", json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    assert store.counts()["labels"] == 0


@pytest.mark.parametrize(
    "method, path, kwargs, status",
    [
        (
            "post",
            "/api/labels",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
        ),
        ("post", "/api/labels", {"json": [1, 2, 3]}, 422),
        ("post", "/api/labels", {"content": b"x" * (MAX_BODY + 1)}, 413),
        ("post", "/api/annotators", {"json": {"name": ""}}, 422),
        ("post", "/api/annotators", {"json": {"name": "line\nbreak"}}, 400),
        ("post", "/api/annotators", {"json": {"name": "\u202eAda"}}, 400),
        ("post", "/api/annotators", {"json": {}}, 422),
        ("get", "/api/next", {}, 422),
        ("get", "/api/next", {"params": {"annotator_id": "ann-nobody"}}, 404),
        ("get", "/api/next-rating", {"params": {"annotator_id": "x", "scale": "stars10"}}, 422),
        (
            "post",
            "/api/ratings",
            {
                "json": {
                    "label_id": "rating-0001",
                    "item_id": 1,
                    "annotator_id": "x",
                    "scale": "stars",
                    "value": 3,
                }
            },
            404,
        ),
        ("get", "/static/app.py", {}, 404),
        ("get", "/no/such/page", {}, 404),
        ("post", "/api/labels", {"content": (b"x" * 1000 for _ in range(100))}, 411),
        (
            "post",
            "/api/labels",
            {"content": b"{}", "headers": {"transfer-encoding": "chunked"}},
            411,
        ),
    ],
)
def test_bad_requests_never_500(app, method, path, kwargs, status):
    client, store = app
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error"]
    assert store.counts()["labels"] == store.counts()["ratings"] == 0


def test_pages_escape_text_and_forbid_inline_script(app):
    client, store = app
    me = store.annotator(PAYLOAD[:60])
    c = store.add_comparison(f"User: {PAYLOAD}", PAYLOAD, "fine", source="test", wanted_labels=2)
    store.add_label("label-0001", c, me, "a")
    page = client.get("/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    admin = client.get("/admin").text
    assert "<script>document" not in admin and "&lt;script&gt;document" in admin
    item = client.get("/api/next", params={"annotator_id": _register(client, "Bob")}).json()
    assert item["reply_a"] == PAYLOAD  # JSON carries the raw text; the page sets it as text


def test_admin_shows_counts_kappa_and_models(app):
    client, store = app
    ada, bob = store.annotator("Ada"), store.annotator("Bob")
    for n in range(10):
        c = store.add_comparison(
            f"User: q{n}", f"a{n}", f"b{n}", source="test", rm_version=1, rm_margin=1.0
        )
        store.add_label(f"ada-{n:05d}", c, ada, "a")
        store.add_label(f"bob-{n:05d}", c, bob, "a" if n < 8 else "b")
    store.record_reward_model(
        1,
        "/tmp/rm/v1",
        train_labels=16,
        heldout_labels=4,
        accuracy=0.75,
        baseline_version=None,
        baseline_accuracy=None,
        promoted=True,
    )
    page = client.get("/admin").text
    assert "10 comparisons, 20 labels" in page
    assert "10 comparisons labelled by two or more annotators" in page
    stats = client.get("/api/stats").json()
    assert stats["agreement"]["observed"] == 0.8
    assert stats["rm_accuracy"][0]["accuracy"] == pytest.approx(18 / 20)
    assert stats["reward_models"][0]["promoted"] == 1
