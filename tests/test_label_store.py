"""The label database and agreement with the model."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from armorm_ui.batch import Item
from armorm_ui.errors import InputError
from armorm_ui.label_store import LabelStore, agreement, failure_wait, name_skeleton, parse_ranking, project_id
from armorm_ui.objectives import NAMES
from armorm_ui.results import ScoreResult

ITEMS = [Item(f"q{i}", [{"role": "user", "content": f"question {i}"}], ["a", "b", "c"], i + 2) for i in range(4)]


def result(scores, rewards=None) -> ScoreResult:
    scores = np.asarray(scores, dtype=float)
    rewards = np.zeros((len(scores), 19)) if rewards is None else rewards
    return ScoreResult(scores, rewards, np.ones(19), np.ones(19), np.eye(19))


class Clock:
    """The store's clock, moved by hand: waits are tested without sleeping."""

    def __init__(self, now: float = 1.7e9):
        self.now = now

    def __call__(self) -> float:
        return self.now


def store_with_file(path, **options):
    """A store with a project made by it, where ana has claimed her name and opened a file: (store, ana, key)."""
    store = LabelStore(path, **options)
    key = store.new_project()
    ana = store.sign_in(key, "ana", "ana-passcode")
    store.add_file(ana.project, "f1", "items.csv", ITEMS)
    return store, ana, key


def test_labels_persist_and_resume(labels_url):
    path = labels_url
    store, ana, key = store_with_file(path)
    assert store.next_position(ana, "f1") == 0
    store.record(ana, "f1", ITEMS[0], 0, 1, None, "clear", result([0.1, 0.5, 0.2]))
    store.record(ana, "f1", ITEMS[1], 1, 0, [0, 2, 1], "", result([0.1, 0.5, 0.2]))
    again = LabelStore(path)  # a new process sees everything recorded
    ana2 = again.sign_in(key, "ana", "ana-passcode")
    assert again.next_position(ana2, "f1") == 2
    ben = again.sign_in(key, "ben", "ben-passcode")
    assert again.next_position(ben, "f1") == 2  # annotators are told apart: ben gets the items nobody labelled
    assert [again.item(ana.project, "f1", k) for k in range(4)] == ITEMS
    frame = again.frame(ana.project, "f1")
    assert frame["note"].tolist() == ["clear", ""] and frame["choice"].tolist() == [1, 0]
    store.record(ana, "f1", ITEMS[0], 0, 2, None, "changed my mind", result([0.1, 0.5, 0.2]))
    assert len(again.frame(ana.project, "f1")) == 2  # replaced, not duplicated


def test_record_refusals(labels_url):
    store, ana, key = store_with_file(labels_url)
    with pytest.raises(InputError, match="Enter your name"):
        store.sign_in(key, "  ", "ana-passcode")
    with pytest.raises(InputError, match="Choose one of the 3"):
        store.record(ana, "f1", ITEMS[0], 0, 5, None, "", result([1, 2, 3]))
    with pytest.raises(InputError, match="not in this project"):
        store.count(ana.project, "nope")
    with pytest.raises(InputError, match="The note is 2,001 characters long; the limit is 2,000"):
        store.record(ana, "f1", ITEMS[0], 0, 0, None, "n" * 2001, result([1, 2, 3]))
    with pytest.raises(InputError, match="Your name is 65 characters long; the limit is 64"):
        store.sign_in(key, "a" * 65, "ana-passcode")
    with pytest.raises(InputError, match="Your name contains a NUL"):
        store.sign_in(key, "a\0b", "ana-passcode")


def test_a_second_project_cannot_list_open_or_read_the_first(labels_url):
    store, ana, _key = store_with_file(labels_url)
    store.record(ana, "f1", ITEMS[0], 0, 1, None, "private note", result([0.1, 0.5, 0.2]))
    eve = store.sign_in(store.new_project(), "ana", "eve-passcode")  # same name, another project: another person
    assert store.files(eve.project) == [] and store.files(ana.project) == [("f1", "items.csv")]
    with pytest.raises(InputError, match="not in this project"):
        store.count(eve.project, "f1")
    with pytest.raises(InputError, match="not in this project"):
        store.item(eve.project, "f1", 0)
    assert store.frame(eve.project).empty and store.frame(eve.project, "f1").empty
    assert store.labelled(eve, "f1") == 0


def test_a_name_is_claimed_by_its_passcode(labels_url):
    store, ana, key = store_with_file(labels_url)
    with pytest.raises(InputError, match="name is taken in this project"):
        store.sign_in(key, "ana", "not-anas-passcode")
    with pytest.raises(InputError, match="passcode"):
        store.sign_in(key, "ana", "short")
    assert store.sign_in(key, " ana ", "ana-passcode") == ana


LOOK_ALIKES = ["al\u0069\u0301ce", "alice\u200b", "\u0430lice", "ALICE", "\uff41lice"]
"""'alíce' with a combining accent, a zero-width space, a Cyrillic 'а', capitals, a fullwidth 'ａ'."""


def test_a_name_that_looks_like_a_claimed_one_is_taken(labels_url):
    store, _ana, key = store_with_file(labels_url)
    alice = store.sign_in(key, "alice", "alice-passcode")
    assert {name_skeleton(n) for n in LOOK_ALIKES} == {"alice"}
    for name in LOOK_ALIKES:
        with pytest.raises(
            InputError, match=re.escape(f"The name {name!r} looks like 'alice', which is taken: choose")
        ):
            store.sign_in(key, name, "mallory-passcode")
    assert store.sign_in(key, "alice", "alice-passcode") == alice  # her own name still opens
    assert store.sign_in(store.new_project(), "\u0430lice", "another-passcode")  # another project: free


def test_a_person_chosen_key_opens_nothing(labels_url):
    store = LabelStore(labels_url)
    with pytest.raises(InputError, match="Keys are made by this server, not chosen"):
        store.sign_in("team-project-2025", "ana", "ana-passcode")
    with pytest.raises(InputError, match="Keys are made by this server"):
        store.project("a-long-person-chosen-project-key")
    with pytest.raises(InputError, match="project key"):
        store.sign_in("short", "ana", "ana-passcode")
    key = store.new_project()
    assert len(key) >= 22 and store.new_project() != key  # 144 random bits each, URL-safe base64
    assert store.project(key) == project_id(key) == store.sign_in(key, "ana", "ana-passcode").project
    assert store.project(f"  {key} ") == project_id(key)  # pasted with spaces around it


def test_an_old_databases_projects_and_names_still_open(labels_url):
    """A database written before keys and skeletons were recorded: its tables as they were, rows put in by hand."""
    import hashlib

    import sqlalchemy as sa

    from armorm_ui import label_store

    key = "team-project-2025-chosen-by-a-person"
    project = hashlib.sha256(key.encode()).hexdigest()
    old = sa.MetaData()
    for table in (label_store.FILES, label_store.ITEMS, label_store.ANNOTATORS, label_store.LABELS):
        table.to_metadata(old)
    engine = sa.create_engine(labels_url)
    old.create_all(engine)
    salt = f"{project}/ana".encode()  # the passcode digest as sign_in makes it
    digest = hashlib.scrypt(b"ana-passcode", salt=salt, n=2**14, r=8, p=1).hex()
    with engine.begin() as db:
        db.execute(label_store.ANNOTATORS.insert(), [
            {"project": project, "name": n, "passcode": digest, "created": 1.0} for n in ("ana", "Ana")])  # fmt: skip
        db.execute(label_store.FILES.insert().values(project=project, file_id="f1", name="items.csv", n_items=0,
                                                     bytes=0, created=1.0, used=9e99))  # fmt: skip
        assert not sa.inspect(db).has_table("projects")
    engine.dispose()
    store = LabelStore(labels_url)
    ana = store.sign_in(key, "ana", "ana-passcode")
    assert ana.project == project and store.files(project) == [("f1", "items.csv")]
    with pytest.raises(InputError, match="name is taken"):  # the older of two look-alikes keeps its claim too
        store.sign_in(key, "Ana", "wrong-passcode")
    with pytest.raises(InputError, match="looks like"):  # but no new one is taken
        store.sign_in(key, "ANA", "ana-passcode")
    LabelStore(labels_url)  # opening it again changes nothing
    with pytest.raises(InputError, match="Keys are made by this server"):
        store.sign_in("another-team-project-2025", "ana", "ana-passcode")


def wrong(store, key, name, client=None):
    with pytest.raises(InputError, match="passcode does not match"):
        store.sign_in(key, name, "wrong-passcode", client)


def refused_for(store, key, name, client=None, passcode="ana-passcode") -> str:
    """The refusal of a try made during a wait, even with the right passcode."""
    with pytest.raises(InputError, match=r"wait \d+ seconds") as refused:
        store.sign_in(key, name, passcode, client)
    return str(refused.value)


def test_wrong_passcodes_make_the_next_try_wait(labels_url, monkeypatch):
    clock = Clock()
    store, ana, key = store_with_file(labels_url, clock=clock)
    import hashlib

    hashed = []
    scrypt = hashlib.scrypt
    monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: hashed.append(1) or scrypt(*a, **k))
    for _ in range(5):  # five free
        wrong(store, key, "ana")
    wrong(store, key, "ana")  # the sixth: 2 s to wait
    tried = len(hashed)
    assert "wait 2 seconds" in refused_for(store, key, "ana")  # the right passcode, refused unchecked
    assert len(hashed) == tried  # not even hashed
    clock.now += 1.5
    assert "wait 1 seconds" in refused_for(store, key, "ana")
    for n, wait in zip(range(7, 12), (4, 8, 16, 32, 64), strict=True):  # each further one doubles the wait
        clock.now += failure_wait(n - 1)
        wrong(store, key, "ana")
        assert f"wait {wait} seconds" in refused_for(store, key, "ana")
        assert failure_wait(n) == wait
    assert store.sign_in(key, "ben", "ben-passcode")  # another name is not held up
    clock.now += 64
    assert store.sign_in(key, "ana", "ana-passcode") == ana  # success clears the name's count...
    for _ in range(5):
        wrong(store, key, "ana")  # ...so five are free again
    wrong(store, key, "ana")
    refused_for(store, key, "ana")


def test_wrong_passcodes_are_counted_per_client_across_names(labels_url):
    clock = Clock()
    store, _ana, key = store_with_file(labels_url, clock=clock)
    other = store.new_project()
    names = [(k, f"user{i}") for i, k in enumerate([key, other] * 4)]
    for k, name in names:
        store.sign_in(k, name, "ana-passcode")  # each claimed by its owner
    for k, name in names[:6]:  # one wrong passcode for each of six names, from one address
        wrong(store, k, name, "203.0.113.7")
    for k, name in names[6:]:  # the next name, even its right passcode, waits
        assert "wait 2 seconds" in refused_for(store, k, name, "203.0.113.7")
        assert store.sign_in(k, name, "ana-passcode", "198.51.100.1")  # from another address: no wait
    clock.now += 2
    assert store.sign_in(key, names[6][1], "ana-passcode", "203.0.113.7")  # a success, but the count stays:
    wrong(store, *names[7], "203.0.113.7")
    assert "wait 4 seconds" in refused_for(store, *names[0], "203.0.113.7")
    clock.now += 86400 + 4  # a day without a failure: forgotten
    wrong(store, *names[0], "203.0.113.7")
    assert store.sign_in(key, names[0][1], "ana-passcode", "203.0.113.7")


def test_a_thousand_guesses_take_more_than_a_day():
    """At the enforced rate: each guess waits the wait the failures before it imposed (failure_wait, which the
    tests above check the store enforces). 5 free, then 2+4+...+512 s = 1,022 s for the next 9, then 15 minutes
    each for the other 985: 887,522 s, 10.3 days."""
    seconds = sum(failure_wait(n) for n in range(1, 1000))  # before guess n + 1, the wait after n failures
    assert seconds == 1022 + 985 * 900 == 887_522
    assert seconds > 86400


def test_quotas_and_expiry(labels_url):
    clock = Clock()
    store, ana, _key = store_with_file(labels_url, max_files=2, max_bytes=4000, max_age_days=1, clock=clock)
    store.add_file(ana.project, "f1", "items.csv", ITEMS)  # the same file again: no new space taken
    store.add_file(ana.project, "f2", "more.csv", ITEMS)
    with pytest.raises(InputError, match="keeps 2 files, the limit"):
        store.add_file(ana.project, "f3", "third.csv", ITEMS)
    big = [Item(f"b{i}", [{"role": "user", "content": "x" * 500}], ["a", "b"], i) for i in range(8)]
    other = store.sign_in(store.new_project(), "eve", "eve-passcode")
    with pytest.raises(InputError, match="the limit is 0 MB per project"):
        store.add_file(other.project, "big", "big.csv", big)
    store.record(ana, "f1", ITEMS[0], 0, 1, None, "", result([0.1, 0.5, 0.2]))
    clock.now += 2 * 86400
    store.add_file(other.project, "small", "small.csv", ITEMS[:1])  # any write removes what expired
    assert store.files(ana.project) == []
    with pytest.raises(InputError, match="expired"):
        store.item(ana.project, "f1", 0)
    assert len(store.frame(ana.project)) == 1  # the labels are kept
    store.add_file(ana.project, "f1", "items.csv", ITEMS)  # uploading the file again brings it back
    assert store.next_position(ana, "f1") == 1


def test_labelling_one_item_reads_one_item(labels_url):
    import sqlalchemy as sa

    many = [Item(f"q{i}", [{"role": "user", "content": f"question {i} " + "x" * 2000}], ["a", "b"], i) for i in
            range(300)]  # fmt: skip
    store = LabelStore(labels_url)
    ana = store.sign_in(store.new_project(), "ana", "ana-passcode")
    store.add_file(ana.project, "f", "many.csv", many)
    read = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *args: read.append((args[2], args[3])))
    assert store.item(ana.project, "f", 123) == many[123]
    store.record(ana, "f", many[123], 123, 0, None, "", result([1.0, 0.0]))
    assert store.next_position(ana, "f") == 0
    item_reads = [(sql, params) for sql, params in read if "project_items.data" in sql]
    params = item_reads[0][1] if item_reads else ()
    values = params.values() if isinstance(params, dict) else params  # named (PostgreSQL) or positional (SQLite)
    assert len(item_reads) == 1 and 123 in values  # one row, for item(); no whole-file read


def test_parse_ranking():
    assert parse_ranking("B > A > C", 3) == [1, 0, 2]
    assert parse_ranking("c, a, b", 3) == [2, 0, 1]
    assert parse_ranking("  ", 3) is None
    for bad in ("A > B", "A > A > B", "A > B > D", "first"):
        with pytest.raises(InputError, match="must name each of A, B, C once"):
            parse_ranking(bad, 3)


def test_agreement_against_direct_computation(labels_url):
    store, ana, _key = store_with_file(labels_url)
    rng = np.random.default_rng(0)
    truth = []
    for i, (choice, ranking) in enumerate([(1, [1, 0, 2]), (0, None), (2, [2, 1, 0]), (1, None)]):
        rewards = rng.random((3, 19))
        scores = rng.random(3)
        store.record(ana, "f1", ITEMS[i], i, choice, ranking, "", result(scores, rewards))
        truth.append((choice, ranking, scores, rewards))
    got = agreement(store.frame(ana.project, "f1"))["ana"]
    assert got["labels"] == 4
    assert got["model_top_agreement"] == pytest.approx(np.mean([np.argmax(s) == c for c, _, s, _ in truth]))
    for j, name in enumerate(NAMES):
        direct = np.mean([np.argmax(r[:, j]) == c for c, _, _, r in truth])
        assert got["objective_agreement"][name] == pytest.approx(direct, abs=1e-4)
    rhos = []
    for _c, ranking, scores, _r in truth:
        if ranking:
            human = np.argsort(ranking)  # position of each candidate in the human order
            model = np.argsort(np.argsort(-scores))
            rhos.append(1 - 6 * np.sum((human - model) ** 2) / (3 * (9 - 1)))  # Spearman, no ties
    assert got["full_rankings"] == 2 and got["spearman_mean"] == pytest.approx(np.mean(rhos))
    json.dumps(got)


def test_a_database_that_fails_says_so_in_one_sentence(labels_url, tmp_path):
    """A database that refuses a value (a NUL in a file id, on PostgreSQL) or is down: one plain sentence saying
    what was lost; never the host, port, SQL text, parameters or the driver's words."""
    import sqlalchemy as sa

    from armorm_ui.label_store import DatabaseUnavailable

    from .conftest import free_port

    store, ana, _ = store_with_file(labels_url)
    secret_words = ["SELECT", "project_files", "psycopg", "sqlite3", "127.0.0.1", "armorm-pg", ana.project]

    def plain(error, *lost):
        text = str(error.value)
        assert not [w for w in secret_words if w in text], text
        assert all(w in text for w in lost) and error.value.__suppress_context__, text

    if labels_url.startswith("postgresql"):
        with pytest.raises(DatabaseUnavailable) as refused:
            store.count(ana.project, "f\x001")
        plain(refused, "refused", "NUL")
    else:
        with pytest.raises(InputError, match="not in this project"):  # SQLite stores any text: just not found
            store.count(ana.project, "f\x001")
    port = free_port()
    dead = (f"postgresql+psycopg://armorm@127.0.0.1:{port}/gone" if labels_url.startswith("postgresql")
            else f"sqlite:///{tmp_path / 'no-such-folder' / 'labels.sqlite'}")  # fmt: skip
    secret_words.append(str(port))
    store.engine = sa.create_engine(dead)
    with pytest.raises(DatabaseUnavailable) as down:
        store.files(ana.project)
    plain(down, "not answering")
    with pytest.raises(DatabaseUnavailable) as down:
        store.record(ana, "f1", ITEMS[0], 0, 1, None, "", result([0.1, 0.5, 0.2]))
    plain(down, "not answering", "your label was not saved")


def test_quotas_across_projects_hold_for_several_processes(labels_url):
    """The total storage cap and the projects-per-address limit, each checked in the transaction that writes:
    eight stores (as eight processes: each its own connections) racing past a cap that leaves room for three files
    store exactly three. Sizes are counted in UTF-8 bytes."""
    import threading

    clock = Clock()
    wide = [Item(f"q{i}", [{"role": "user", "content": "é" * 1000}], ["a", "b"], i + 2) for i in range(10)]
    size = sum(len(json.dumps(it.__dict__, ensure_ascii=False).encode()) for it in wide)
    assert size > 2 * 10_000 > sum(len(json.dumps(it.__dict__, ensure_ascii=False)) for it in wide)  # é: 2 bytes
    stores = [LabelStore(labels_url, max_total_bytes=int(3.5 * size), clock=clock) for _ in range(8)]
    projects = [s.project(s.new_project()) for s in stores]  # one project each: the per-project cap is not the limit
    start, stored, refused = threading.Barrier(8), [], []

    def add(k):
        start.wait(timeout=60)
        try:
            stores[k].add_file(projects[k], f"f{k}", "items.csv", wide)
            stored.append(k)
        except InputError as e:
            refused.append(str(e))

    threads = [threading.Thread(target=add, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(stored) == 3 and len(refused) == 5, (stored, refused)
    assert "The label database is full" in refused[0] and "nothing was stored" in refused[0]

    maker = LabelStore(labels_url, projects_per_hour=3, clock=clock)
    for _ in range(3):
        maker.new_project(client="10.0.0.7")
    with pytest.raises(InputError, match="made 3 projects in the last hour, the limit: use one of them, or make "
                                         "another in 60 minute"):  # fmt: skip
        maker.new_project(client="10.0.0.7")
    maker.new_project(client="10.0.0.8")  # another address is not held back
    clock.now += 3601
    maker.new_project(client="10.0.0.7")  # an hour later


def test_a_checked_passcode_is_not_hashed_again_soon(labels_url, monkeypatch):
    """Each save signs in again: the passcode checked a moment ago is remembered (as an HMAC, not the passcode), a
    wrong one still costs scrypt and counts as a failure, and the memory ends after its time."""
    import hashlib

    clock = Clock()
    store, ana, key = store_with_file(labels_url, clock=clock)
    hashed = []
    scrypt = hashlib.scrypt
    monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: hashed.append(1) or scrypt(*a, **k))
    for _ in range(3):
        assert store.sign_in(key, "ana", "ana-passcode") == ana
    assert len(hashed) <= 1
    assert "ana-passcode" not in repr(vars(store._verified))
    before = len(hashed)
    with pytest.raises(InputError, match="name is taken"):
        store.sign_in(key, "ana", "ana-passcode!")
    assert len(hashed) == before + 1
    clock.now += store._verified.ttl_s + 1
    assert store.sign_in(key, "ana", "ana-passcode") == ana
    assert len(hashed) == before + 2  # remembered no longer: checked again
