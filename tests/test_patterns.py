"""The miner's algorithm: masks, Drain, the split of few-valued places, the post-merge,
canonical ids, and a state rebuilt from its rows that goes on exactly as the live one."""

import dataclasses

import pytest

from bench.grouping import grouping_accuracy
from collector.patterns.drain import WILDCARD, Drain
from collector.patterns.index import MAX_VALUES, PatternIndex, generation, post_merge_key
from collector.patterns.masks import Masker


@pytest.mark.parametrize("message, masked", [
    ("Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106"
     " dest: /10.250.19.102:50010",
     "Receiving block blk_<NUM> src: /<IP> dest: /<IP>"),
    ("connection from 211.72.151.162 () at Fri Jun 17 07:07:00 2005",
     "connection from <IP> () at <TIME>"),
    ("2017-05-16 00:00:00.008 took 0.2 s", "<TIME> took <NUM> s"),
    ("GET https://example.com/a?b=1 -> 200", "GET <URL> -> <NUM>"),
    ("req 123e4567-e89b-12d3-a456-426614174000 done", "req <UUID> done"),
    ("mail to ops@example.org failed", "mail to <EMAIL> failed"),
    ("open /var/log/syslog.1 failed", "open <PATH> failed"),
    ("addr 0x7f3a2b ok, hash 9af03c21d", "addr <HEX> ok, hash <HEX>"),
    ("proxy.cse.cuhk.edu.hk:5070 open through proxy p3.example.com:443 HTTPS",
     "<HOST> open through proxy <HOST> HTTPS"),
    ("eth0 up, ssh2 ready, uid=0 euid=-1", "eth0 up, ssh2 ready, uid=<NUM> euid=<NUM>"),
    ("nodes 10.0.0.1,10.0.0.2:80 joined", "nodes <IP> joined"),
])
def test_masks_name_the_kind_of_each_variable(message, masked):
    assert Masker().mask(message) == masked


def test_drain_groups_by_similarity_and_puts_wildcards_where_messages_differ():
    drain = Drain(similarity=0.5)
    first, before = drain.add(("session", "opened", "for", "alice"))
    second, _ = drain.add(("session", "opened", "for", "bob"))
    other, _ = drain.add(("disk", "full", "on", "sda"))

    assert before is None  # a new cluster
    assert second is first and other is not first
    assert first.template == ("session", "opened", "for", WILDCARD)
    assert first.created == ("session", "opened", "for", "alice")  # its place in the tree
    assert drain.match(("session", "opened", "for", "carol")) is first
    assert drain.match(("session", "opened")) is None  # another word count


def test_drain_similarity_is_the_threshold():
    strict, loose = Drain(similarity=0.9), Drain(similarity=0.5)
    for drain in (strict, loose):
        drain.add(("job", "a", "started", "now"))
        drain.add(("job", "b", "stopped", "now"))
    assert len(strict.clusters) == 2 and len(loose.clusters) == 1


def test_words_with_digits_share_the_wildcard_branch():
    drain = Drain(similarity=0.5, depth=4)
    a, _ = drain.add(("worker7", "started", "job", "x"))
    b, _ = drain.add(("worker8", "started", "job", "y"))
    assert a is b  # both under the <*> child of the word-count node


def mine(index, messages, service="svc", first_id=1):
    return [index.add(first_id + n, service, message, n) for n, message in enumerate(messages)]


def test_a_few_valued_place_splits_events_and_overflows_into_a_variable():
    index = PatternIndex(0.5)
    states = mine(index, ["VM Started on host1", "VM Paused on host2", "VM Resumed on host3",
                          "VM Started on host4"])
    canonical = [index.canonical(p) for p in states]
    assert canonical[0] == canonical[3] and len(set(canonical)) == 3  # Started / Paused / Resumed
    assert index.patterns[canonical[1]].text == "VM Paused on <*>"

    users = mine(index, [f"session closed for user {name}" for name in
                         ("ann", "bob", "cy", "dee", "ed")], first_id=10)
    merged = {index.canonical(p) for p in users}
    assert len(merged) == 1  # a fourth value: a variable, and the early ids are its aliases
    assert len(set(users)) == MAX_VALUES + 1  # ann, bob, cy; then the variable
    assert merged == {min(users)}
    assert index.patterns[merged.pop()].text == "session closed for user <*>"


def test_patterns_differing_only_in_the_kind_of_a_variable_are_one():
    index = PatternIndex(0.7)
    ids = mine(index, ["10.0.0.1 refused the connection",
                       "gw.example.co.uk refused the connection"])
    assert ids[0] != ids[1]  # Drain branches on the first word: two clusters
    assert index.canonical(ids[0]) == index.canonical(ids[1]) == ids[0]
    assert post_merge_key(("<IP>", "x", "<NUM>@<NUM>/<TIME>", "blk_<NUM>")) == "<*> x <*> blk_<*>"


def test_services_are_mined_apart():
    index = PatternIndex(0.7)
    a = index.add(1, "api", "user 1 logged in", 0)
    b = index.add(2, "web", "user 1 logged in", 0)
    assert a != b and index.patterns[a].service == "api"


def test_canonical_grouping_matches_a_ground_truth():
    index = PatternIndex(0.7)
    messages = [f"Receiving block blk_{n} src: /10.0.0.{n}:5001 dest: /10.0.0.9:50010"
                for n in range(5)]
    messages += [f"PacketResponder {n} for block blk_{n} terminating" for n in range(5)]
    messages += ["Verification succeeded for blk_1", "Verification succeeded for blk_7"]
    truth = ["E1"] * 5 + ["E2"] * 5 + ["E3"] * 2
    ids = mine(index, messages)
    assert grouping_accuracy(truth, [index.canonical(p) for p in ids]) == 1.0


def test_a_rebuilt_state_goes_on_exactly_as_the_live_one():
    words = ["alpha", "beta", "gamma", "delta", "eps"]
    messages = [f"{verb} {noun} {n % 5} from {words[n % 5]} at 10.0.{n}.1"
                for n in range(300) for verb, noun in [("open", "file"), ("close", "pipe")][n % 2:]]
    messages += [f"job {words[n % 4]} state {('Active', 'Inactive', 'Failed')[n % 3]}"
                 for n in range(60)]
    half = len(messages) // 2
    live = PatternIndex(0.7)
    mine(live, messages[:half])
    changes = live.take_changes()
    clusters = {(row.service, row.cluster_id): row for row in changes.clusters}
    restored = PatternIndex(0.7)
    restored.restore(sorted(clusters.values(), key=lambda row: (row.service, row.cluster_id)),
                     [dataclasses.replace(live.patterns[i]) for i in sorted(live.patterns)])

    rest = messages[half:]
    assert mine(restored, rest, first_id=half) == mine(live, rest, first_id=half)
    assert ({i: restored.canonical(i) for i in restored.patterns}
            == {i: live.canonical(i) for i in live.patterns})


def test_take_changes_reports_what_changed_once():
    index = PatternIndex(0.7)
    mine(index, ["disk sda is full", "disk sdb is full"])
    changes = index.take_changes()
    assert [record for record, _ in changes.assigned] == [1, 2]
    assert len(changes.clusters) == 1 and changes.patterns
    index.add(3, "svc", "disk sda is full", 0)  # a repeat: only the pattern's counts move
    again = index.take_changes()
    assert again.assigned == [(3, changes.assigned[0][1])] and not again.clusters
    assert [p.records for p in again.patterns] == [2]


def test_the_generation_follows_the_similarity():
    assert generation(0.7) == generation(0.7) != generation(0.6)
