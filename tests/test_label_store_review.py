"""Project roles and settings in the label database: the owner, reviewers, gold labels of the items annotators
disagree on, overlap (how many annotators each item should get), the model's scores setting, guidelines, and names
given by a Hugging Face sign-in. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from armorm_ui.agreement import TIE_CHOICE, agreement_report, ratings
from armorm_ui.errors import InputError
from armorm_ui.label_store import LabelStore, ProjectSettings

from .test_label_store import ITEMS, result, store_with_file


def label(store, who, position: int, choice: int) -> None:
    store.record(who, "f1", ITEMS[position], position, choice, None, "", result([0.1, 0.5, 0.2]))


def test_the_first_name_owns_the_project_and_names_reviewers(labels_url):
    store, ana, key = store_with_file(labels_url)
    ben = store.sign_in(key, "ben", "ben-passcode")
    assert store.settings(ana.project).owner == "ana"
    assert store.reviewers(ana.project) == ["ana"] and store.is_reviewer(ana) and not store.is_reviewer(ben)
    with pytest.raises(InputError, match=r"Only the project's owner \(ana\) can choose reviewers"):
        store.set_reviewer(ben, "ben")
    with pytest.raises(InputError, match="Nobody named 'cleo' has signed in"):
        store.set_reviewer(ana, "cleo")
    assert store.set_reviewer(ana, "ben") == ["ana", "ben"] and store.is_reviewer(ben)
    assert store.set_reviewer(ana, "ben", reviewer=False) == ["ana"]
    with pytest.raises(InputError, match="always a reviewer"):
        store.set_reviewer(ana, "ana", reviewer=False)
    other = store.sign_in(store.new_project(), "ben", "other-passcode")  # another project: ben owns that one
    assert store.settings(other.project).owner == "ben" and store.reviewers(ana.project) == ["ana"]
    assert LabelStore(labels_url).settings(ana.project).owner == "ana"  # kept


def test_a_conflicting_item_reaches_the_review_queue_and_its_gold_label_changes_gold_agreement(labels_url):
    store, ana, key = store_with_file(labels_url)
    ben = store.sign_in(key, "ben", "ben-passcode")
    label(store, ana, 0, 1)
    label(store, ben, 0, 1)  # agreed: not queued
    label(store, ana, 1, 0)
    label(store, ben, 1, 2)  # disagreed
    label(store, ana, 2, TIE_CHOICE)
    label(store, ben, 2, 0)  # disagreed, one a tie
    label(store, ana, 3, 0)  # one label: nothing to disagree with
    queue = store.review_queue(ana.project, "f1")
    assert [(q["item_id"], q["labels"], q["gold"]) for q in queue] == [
        ("q1", {"ana": 0, "ben": 2}, None),
        ("q2", {"ana": TIE_CHOICE, "ben": 0}, None),
    ]
    with pytest.raises(InputError, match="Only the project's reviewers set gold labels"):
        store.set_gold(ben, "f1", ITEMS[1], 2)
    with pytest.raises(InputError, match="Choose one of the 3 candidates"):
        store.set_gold(ana, "f1", ITEMS[1], 7)

    table = ratings(store.frame(ana.project, "f1"), model=False)
    store.set_gold(ana, "f1", ITEMS[1], 2, "B is vague")
    gold = store.gold(ana.project, "f1")
    assert gold == {"q1": 2}
    first = agreement_report(table, gold, resamples=20)["gold"]
    assert first["ben"]["accuracy"]["value"] == 1.0 and first["ana"]["accuracy"]["value"] == 0.0
    store.set_gold(ana, "f1", ITEMS[1], 0)  # changed: replaced, not added
    again = agreement_report(table, store.gold(ana.project, "f1"), resamples=20)["gold"]
    assert again["ana"]["accuracy"]["value"] == 1.0 and again["ben"]["accuracy"]["value"] == 0.0
    assert store.review_queue(ana.project, "f1")[0]["gold"] == 0  # still listed, with its gold label
    store.set_reviewer(ana, "ben")
    store.set_gold(ben, "f1", ITEMS[2], TIE_CHOICE)  # a reviewer the owner named
    assert LabelStore(labels_url).gold(ana.project, "f1") == {"q1": 0, "q2": TIE_CHOICE}  # durable


def test_overlap_serves_the_items_that_still_need_annotators_first(labels_url):
    store, ana, key = store_with_file(labels_url)
    ben = store.sign_in(key, "ben", "ben-passcode")
    cleo = store.sign_in(key, "cleo", "cleo-passcode")
    assert store.settings(ana.project).overlap == 1
    label(store, ana, 0, 0)
    label(store, ana, 1, 0)
    assert store.next_position(ben, "f1") == 2  # one annotator per item: q0 and q1 have theirs
    label(store, ben, 2, 0)
    label(store, ben, 3, 0)
    assert store.next_position(ben, "f1") == 0  # everything has its annotator: then the rest
    assert store.next_position(ana, "f1") == 2
    store.update_settings(ana, overlap=2)
    assert store.next_position(cleo, "f1") == 0  # each item has one label of two: from the start
    assert store.next_position(cleo, "f1", after=1) == 2  # after the one just labelled
    label(store, cleo, 0, 1)
    label(store, cleo, 1, 1)
    assert store.next_position(ben, "f1") == 0 and store.next_position(ben, "f1", after=0) == 1  # q0, q1: 2 labels
    assert store.next_position(ana, "f1") == 2  # q2, q3 need a second
    label(store, ana, 2, 0)
    label(store, ana, 3, 0)
    assert store.next_position(ana, "f1") == 4  # all labelled by ana: the item count


def test_the_owner_sets_overlap_scores_and_guidelines(labels_url):
    store, ana, key = store_with_file(labels_url)
    ben = store.sign_in(key, "ben", "ben-passcode")
    assert store.settings(ana.project) == ProjectSettings("ana", 1, "member", "")
    with pytest.raises(InputError, match=r"Only the project's owner \(ana\) can change the project's settings"):
        store.update_settings(ben, guidelines="# Mine now")
    for bad in (0, 51, 1.5, "2", True):
        with pytest.raises(InputError, match="whole number from 1 to 50"):
            store.update_settings(ana, overlap=bad)
    with pytest.raises(InputError, match="one of member, blind, shown"):
        store.update_settings(ana, scores="sometimes")
    with pytest.raises(InputError, match="The guidelines is 20,001 characters long"):
        store.update_settings(ana, guidelines="x" * 20_001)
    done = store.update_settings(ana, overlap=3, scores="blind", guidelines="Prefer **correct** answers.")
    assert done == ProjectSettings("ana", 3, "blind", "Prefer **correct** answers.")
    assert store.update_settings(ana, scores="shown").overlap == 3  # one setting at a time
    assert LabelStore(labels_url).settings(ana.project).guidelines == "Prefer **correct** answers."
    assert [ProjectSettings(scores=m).hides_scores(h) for m in ("member", "blind", "shown") for h in (True, False)] == [
        True, False, True, True, False, False]  # fmt: skip


def test_hugging_face_accounts_sign_in_without_a_passcode_and_cannot_be_claimed(labels_url):
    store, ana, key = store_with_file(labels_url)
    alice = store.sign_in_account(key, "alice")
    assert alice.name == "hf:alice" and store.sign_in_account(key, " alice ") == alice
    for name in ("hf:alice", "HF:bob", "\u04bbf:carol", "hf:"):  # the prefix, in capitals, with a look-alike h
        with pytest.raises(InputError, match="belong to Hugging Face accounts"):
            store.sign_in(key, name, "a-long-passcode")
    with pytest.raises(InputError, match="looks like 'ana', which is taken"):
        store.sign_in(key, "\u0430na", "a-long-passcode")  # passcode names are checked as before
    with pytest.raises(InputError, match="no username"):
        store.sign_in_account(key, "")
    with pytest.raises(InputError, match="Your name is 67 characters long"):
        store.sign_in_account(key, "a" * 64)
    with pytest.raises(InputError, match="Keys are made by this server"):
        store.sign_in_account("a-long-person-chosen-project-key", "alice")
    fresh = store.new_project()
    assert store.settings(store.sign_in_account(fresh, "dana").project).owner == "hf:dana"  # an account can own one


def test_a_project_made_before_owners_were_recorded_is_owned_by_its_first_name(labels_url):
    import sqlalchemy as sa

    from armorm_ui import label_store

    store, ana, key = store_with_file(labels_url)
    store.sign_in(key, "ben", "ben-passcode")
    with store.engine.begin() as db:  # as a database written before project settings
        db.execute(sa.text("DROP TABLE project_settings"))
    store.engine.dispose()
    again = LabelStore(labels_url)
    assert again.settings(ana.project) == ProjectSettings("ana", 1, "member", "")
    assert sa.inspect(again.engine).has_table(label_store.GOLD.name)
