"""The labelling page in a real browser: Debian's headless Chromium, driven by Playwright,
against ``rlhf-envs label`` started on a free local port.

Set ``RLHF_ENVS_SCREENSHOT=docs/labelling.png`` to save the page as the README shows it.
"""

from __future__ import annotations

import os
import shutil

import pytest
from labelserver import label_server

from rlhf_envs.feedback.store import FeedbackStore

CHROMIUM = (
    os.environ.get("RLHF_ENVS_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium on this machine: install Debian's chromium package (make test does)",
    ),
]

# Chromium as root needs --no-sandbox; the rest keep it off the (closed) network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCRIPT = "<script>window.__pwned = 1; document.title = 'pwned'</script>"
IMAGE = '<img src="x" onerror="window.__pwned = 2">'


@pytest.fixture
def server(tmp_path):
    db = tmp_path / "feedback.sqlite"
    with FeedbackStore(db) as store:  # the first pair served carries script and image payloads
        xss = store.add_comparison(
            f"User: my order {SCRIPT}\nAgent: Sure.\nUser: {IMAGE} still broken",
            f"Here you go: {IMAGE}",
            f"Try this: {SCRIPT}",
            source="test",
        )
    with label_server(
        db, "--env", "RLHF-Chat-v0", "--pairs", "random", "--overlap", "0", "--open"
    ) as (
        url,
        _,
    ):
        yield url, db, xss


@pytest.fixture
def page():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is in the test extras: pip install -e .[test]"
    )
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.dialogs = dialogs
        yield page
        browser.close()


def _wait_sent(page, n: int) -> None:
    page.wait_for_function(
        f"() => document.body.dataset.sent === '{n}' && document.body.dataset.ready !== undefined "
        "&& !document.getElementById('status').textContent.startsWith('Not saved')",
        timeout=30_000,
        polling=100,
    )


def test_keyboard_labelling_reaches_the_database_and_payloads_stay_text(server, page):
    url, db, xss = server
    page.goto(url)
    page.click("button[type=submit]")  # no name: refused in the page, nothing registered
    assert page.locator("#work").is_hidden()
    page.fill("#name", "Ada <b>Lovelace</b>")
    page.click("button[type=submit]")
    page.wait_for_function(
        "() => document.body.dataset.ready !== undefined", timeout=60_000, polling=100
    )

    # The stored payloads are on screen as text: no element was made from them, nothing ran.
    assert page.locator("#text-a").text_content() == f"Here you go: {IMAGE}"
    assert page.locator("#text-b").text_content() == f"Try this: {SCRIPT}"
    assert SCRIPT in page.locator("#dialogue").inner_text()
    assert page.locator("#dialogue img, #compare img, main script").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    assert page.title() != "pwned" and page.dialogs == []

    assert page.locator("#compare").is_visible() and page.locator("#rate").is_hidden()
    keys = ["1", "2", "t", "s", "1", "2"]
    for n, key in enumerate(keys, start=1):
        page.keyboard.press(key)
        _wait_sent(page, n)
    assert "You: 6 labels" in page.locator("#progress").inner_text()

    page.click("#mode-stars")
    page.wait_for_function(
        "() => (document.body.dataset.ready || '').startsWith('stars:')", polling=100
    )
    assert page.locator("#rate").is_visible() and page.locator("#compare").is_hidden()
    page.keyboard.press("4")
    _wait_sent(page, len(keys) + 1)
    page.click("#mode-thumbs")
    page.wait_for_function(
        "() => (document.body.dataset.ready || '').startsWith('thumbs:')", polling=100
    )
    page.keyboard.press("d")
    _wait_sent(page, len(keys) + 2)
    if os.environ.get("RLHF_ENVS_SCREENSHOT"):
        page.click("#mode-compare")
        page.wait_for_function(
            "() => (document.body.dataset.ready || '').startsWith('compare:')", polling=100
        )
        page.screenshot(path=os.environ["RLHF_ENVS_SCREENSHOT"], full_page=True)

    with FeedbackStore(db) as store:
        labels = store.labels()
        assert [r["choice"] for r in labels] == ["a", "b", "tie", "skip", "a", "b"]
        assert labels[0]["comparison_id"] == xss
        assert len({r["annotator_id"] for r in labels}) == 1
        assert sorted((r.scale, r.label) for r in store.ratings()) == [("stars", 4), ("thumbs", 0)]
        assert [a["name"] for a in store.annotator_summary()] == ["Ada <b>Lovelace</b>"]

    page.goto(f"{url}/admin")
    table = page.locator("#annotators").inner_text()
    assert "Ada <b>Lovelace</b>" in table and page.locator("#annotators b").count() == 0
    row = page.locator("#annotators tr", has_text="Lovelace").inner_text().split("\t")
    assert row[2:6] == ["6", "1", "1", "2"]  # labels, ties, skips, ratings
    assert page.evaluate("() => window.__pwned") is None and page.dialogs == []


def test_the_csp_blocks_injected_script_even_if_it_reached_the_dom(server, page):
    """Defence in depth: were some text ever parsed as HTML, the policy forbids inline code."""
    url, _, _ = server
    page.goto(url)
    page.evaluate("""() => { const d = document.createElement('div');
        d.innerHTML = '<img src="x" onerror="window.__pwned = 3">'; document.body.append(d); }""")
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__pwned") is None


def test_a_pair_labelled_in_another_tab_is_skipped_not_stuck(server, page):
    """Two tabs of one annotator get the same waiting pair; the second tab's key gets a 409
    from the store and the page moves on to the next pair instead of retrying forever."""
    url, db, xss = server
    other = page.context.browser.new_page()
    for tab in (page, other):
        tab.goto(url)
        tab.fill("#name", "Grace")
        tab.click("button[type=submit]")
        tab.wait_for_function(
            f"() => document.body.dataset.ready === 'compare:{xss}'", timeout=60_000, polling=100
        )
    page.keyboard.press("1")
    _wait_sent(page, 1)
    other.keyboard.press("2")
    other.wait_for_function(
        f"() => document.body.dataset.ready && document.body.dataset.ready !== 'compare:{xss}'",
        timeout=30_000,
        polling=100,
    )
    assert "already labelled" in other.locator("#status").text_content()
    other.keyboard.press("t")  # and the keys still work
    _wait_sent(other, 1)
    with FeedbackStore(db) as store:
        assert [(r["comparison_id"], r["choice"]) for r in store.labels()][:1] == [(xss, "a")]
        assert [r["choice"] for r in store.labels()] == ["a", "tie"]


def test_an_invitation_link_signs_the_annotator_in_and_nothing_works_without_one(tmp_path, page):
    """Access control on (the default): the link's token signs Ada in, her labels are
    stored as hers, the token leaves the address bar; without a link the page says what to
    do and /admin refuses."""
    db = tmp_path / "feedback.sqlite"
    with FeedbackStore(db) as store:
        ada, token = store.invite("Ada")
    with label_server(db, "--env", "RLHF-Chat-v0", "--pairs", "random", "--overlap", "0") as (
        url,
        _,
    ):
        page.goto(url)
        page.wait_for_function(
            "() => document.getElementById('signin-error').textContent !== ''", polling=100
        )
        assert "invitation link" in page.locator("#signin-error").inner_text()
        assert page.locator("#work").is_hidden() and page.locator("#name").is_hidden()
        page.goto("about:blank")  # (a fragment-only change would not reload the page)
        page.goto(f"{url}/#token={token}")
        page.wait_for_function(
            "() => document.body.dataset.ready !== undefined", timeout=60_000, polling=100
        )
        assert "token" not in page.url  # taken out of the address bar
        page.keyboard.press("1")
        _wait_sent(page, 1)
        page.goto(f"{url}/admin")
        assert "admin token is required" in page.content()
    with FeedbackStore(db) as store:
        assert [(r["annotator_id"], r["choice"]) for r in store.labels()] == [(ada, "a")]
