"""Grouping accuracy of a log parser (Zhu et al., "Tools and Benchmarks for Automated Log
Parsing", ICSE-SEIP 2019), as logparser's ``evaluator.get_accuracy`` computes it.

A message is parsed correctly iff the set of messages in its predicted group is exactly the
set in its ground-truth group; the accuracy is the share parsed correctly. Messages without a
ground-truth EventId are left out first, as logparser's ``evaluate`` does. (This evaluator
gives logparser's published Drain figures exactly from its own output: the study of
/work/research/patterns checked all 16.)
"""

from collections import Counter, defaultdict


def grouping_accuracy(truth, predicted):
    """Share of messages whose predicted group is exactly their ground-truth group.

    ``truth`` and ``predicted``: one group key per message, in the same order; a message
    whose truth is None or empty is left out.
    """
    kept = [(t, p) for t, p in zip(truth, predicted, strict=True) if t not in (None, "")]
    if not kept:
        raise ValueError("no message has a ground truth")
    truth_sizes = Counter(t for t, _ in kept)
    members = defaultdict(Counter)  # predicted key -> its messages' truth keys
    for t, p in kept:
        members[p][t] += 1
    correct = 0
    for inside in members.values():
        if len(inside) == 1:
            ((only, count),) = inside.items()
            if truth_sizes[only] == count:
                correct += count
    return correct / len(kept)
