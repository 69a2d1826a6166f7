"""Access control, leases and the Host check of the labelling app (issue: harden the
human-feedback loop): tokens hashed at rest, labels only for pairs handed out, each pair
labelled exactly as often as it wants, even with annotators working at once."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from rlhf_envs.feedback.app import create_app
from rlhf_envs.feedback.pairs import PairSource
from rlhf_envs.feedback.store import FeedbackStore, LabelConflict


@pytest.fixture
def guarded(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    source = PairSource(store, "RLHF-Chat-v0", mode="random", overlap=0.0, seed=3)
    client = TestClient(
        create_app(store, source, allowed_hosts=("testserver",)), raise_server_exceptions=False
    )
    yield client, store
    source.close()
    store.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _label(client, item, token, choice="a"):
    return client.post(
        "/api/labels",
        json={
            "label_id": item["label_id"],
            "comparison_id": item["comparison_id"],
            "annotator_id": item["me"],
            "choice": choice,
        },
        headers=_bearer(token),
    )


def test_labelling_needs_an_invitation_token_and_admin_needs_the_admin_token(guarded, tmp_path):
    client, store = guarded
    assert client.get("/api/config").json() == {"access": "tokens"}
    # Nobody registers themselves, and nothing is served without a token.
    r = client.post("/api/annotators", json={"name": "Mallory"})
    assert r.status_code == 403 and "invited by an admin" in r.json()["error"]
    assert client.get("/api/next").status_code == 401
    assert client.get("/api/next", headers=_bearer("x" * 32)).status_code == 401
    ada, ada_token = store.invite("Ada")
    grace, grace_token = store.invite("Grace")
    assert client.get("/api/me", headers=_bearer(ada_token)).json()["annotator_id"] == ada
    item = client.get("/api/next", headers=_bearer(ada_token)).json()
    item["me"] = ada
    assert _label(client, item, ada_token).status_code == 201
    # Grace's token cannot label as Ada.
    item2 = client.get("/api/next", headers=_bearer(ada_token)).json()
    item2["me"] = ada
    r = _label(client, item2, grace_token)
    assert r.status_code == 403 and "another annotator" in r.json()["error"]
    # Names and agreement are the admin's: refused without the admin token, shown with it.
    assert client.get("/admin").status_code == 401
    assert client.get("/api/stats").status_code == 401
    assert client.get("/admin", headers=_bearer(ada_token)).status_code == 401
    admin = store.new_admin_token()
    page = client.get("/admin", params={"token": admin})
    assert page.status_code == 200 and "Ada" in page.text and "Grace" in page.text
    assert client.get("/api/stats", headers=_bearer(admin)).status_code == 200
    # A new admin link revokes the old one; revoking an annotator locks them out.
    store.new_admin_token()
    assert client.get("/admin", params={"token": admin}).status_code == 401
    assert store.revoke(grace) == 1
    assert client.get("/api/next", headers=_bearer(grace_token)).status_code == 401
    # Tokens are stored hashed: the database file never holds one.
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("feedback.sqlite*"))
    assert ada_token.encode() not in raw and admin.encode() not in raw
    # The database holds names and token hashes: its owner alone may read it.
    assert (tmp_path / "feedback.sqlite").stat().st_mode & 0o777 == 0o600


def test_a_label_is_accepted_only_for_a_pair_handed_to_that_annotator(guarded):
    client, store = guarded
    ada, token = store.invite("Ada")
    # A pair never handed to Ada (e.g. one from the held-out slice she picked by id).
    chosen = store.add_comparison("User: hi", "Hello!", "Go away.", source="test")
    r = client.post(
        "/api/labels",
        json={"label_id": "forged-0001", "comparison_id": chosen, "choice": "a"},
        headers=_bearer(token),
    )
    assert r.status_code == 409 and "not handed to" in r.json()["error"]
    assert store.counts()["labels"] == 0


def test_the_host_header_must_name_an_allowed_host(guarded):
    client, _ = guarded
    r = client.get("/api/config", headers={"Host": "attacker.example:8000"})
    assert r.status_code == 421 and "not served here" in r.json()["error"]
    assert client.get("/api/config", headers={"Host": "testserver"}).status_code == 200


def test_annotators_at_once_get_each_pair_exactly_as_often_as_it_wants(tmp_path):
    """8 annotators in threads ask for pairs and label them; 60 pairs want 1 label, 20
    want 2. Without leases most single-label pairs got 2-4 labels."""
    store = FeedbackStore(tmp_path / "f.sqlite")
    for n in range(80):
        store.add_comparison(
            f"User: q{n}", f"a{n}", f"b{n}", source="test", wanted_labels=1 + (n % 4 == 0)
        )
    who = [store.annotator(f"annotator {k}") for k in range(8)]
    errors: list[BaseException] = []

    total = sum(1 + (n % 4 == 0) for n in range(80))

    def work(me: str) -> None:
        # Like a person at the page: with nothing to label now (pairs held by others),
        # ask again a little later, until every pair has its labels.
        deadline = time.time() + 60
        try:
            while store.counts()["labels"] < total and time.time() < deadline:
                c = store.next_comparison(me)
                if c is None:
                    time.sleep(0.01)
                    continue
                time.sleep(0.001)  # reading the pair
                store.add_label(
                    f"lbl-{me}-{c.id}", c.id, me, "a", require_lease=True, limit_to_wanted=True
                )
        except BaseException as err:  # (reported below)
            errors.append(err)

    threads = [threading.Thread(target=work, args=(me,)) for me in who]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    counts = dict(store._read("SELECT comparison_id, COUNT(*) FROM labels GROUP BY comparison_id"))
    wanted = {c: 1 + ((c - 1) % 4 == 0) for c in range(1, 81)}
    assert counts == wanted
    store.close()


def test_an_expired_lease_returns_the_pair_to_the_pool(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite")
    only = store.add_comparison("User: hi", "Hello!", "Bye.", source="test")
    ada, grace = store.annotator("Ada"), store.annotator("Grace")
    assert store.next_comparison(ada, lease_seconds=0.2).id == only
    assert store.next_comparison(ada, lease_seconds=0.2).id == only  # a reload: same pair
    assert store.next_comparison(grace) is None  # held for Ada
    time.sleep(0.3)
    assert store.next_comparison(grace).id == only  # Ada's hold expired
    guarded = {"require_lease": True, "limit_to_wanted": True}  # as the app calls it
    assert store.add_label("lbl-grace-1", only, grace, "b", **guarded)
    with pytest.raises(LabelConflict, match="already has the 1 label"):
        store.add_label("lbl-ada-1", only, ada, "a", **guarded)
    assert store.counts()["labels"] == 1
    store.close()
