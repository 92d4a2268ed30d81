"""Pattern ids for records, given once and never changed, over one Drain per service.

Drain alone does not tell apart events that differ in one word of few values ("VM Started" /
"VM Paused", "... proxy <HOST> HTTPS" / "SOCKS5"), and splits events that differ only in the
kind of a variable (``<IP>`` / ``<HOST>`` first). Two additions fix both:

- **split**: a place where Drain put ``<*>`` but its cluster's messages held at most
  ``MAX_VALUES`` distinct words, none of them masked, is kept as a constant: each of its
  values makes a pattern of its own. A place that overflows becomes a variable;
- **post-merge**: patterns whose text differs only in masked words (a mask, ``<*>``, or a
  word of masks and punctuation) are one.

A record keeps the pattern id it was given. As clusters generalize and places overflow,
patterns come to stand for the same thing: each pattern's *canonical key* is computed again
from its creation key and its cluster's state, and the smallest id with that key stands for
them all (``canonical_id``). Queries and counts go by canonical ids, so an old id still finds
its records, and the grouping equals the one of the same messages mined offline.
"""

import hashlib
import json
from dataclasses import dataclass, field

from .drain import WILDCARD, Cluster, Drain
from .masks import MASK_TOKEN, MASKS, ONLY_MASKS, Masker

# Settings of the miner that are not the operator's: the study measured these (README,
# Patterns); PATTERN_SIMILARITY is.
DEPTH = 4
MAX_CHILDREN = 1000  # drain3's default 100 makes a service of many patterns 8x slower
MAX_VALUES = 3  # distinct words a place may hold and still tell events apart
MAX_CLUSTERS = 10_000  # per service; past it new shapes go to the service's "other" pattern
MAX_CHARS = 4096  # of a message, mined: the rest costs masking time and tells little
# Exact repeats (half of LogHub's messages) skip masking and Drain.
CACHE_ENTRIES, CACHE_MAX_CHARS = 20_000, 1000
OTHER_KEY = ("<other>",)  # the pattern of a service's messages past MAX_CLUSTERS
OVERFLOWED = True  # a place's state: None (a constant so far), a set of values, or this


def generation(similarity):
    """The fingerprint of all that decides groupings: ids of two generations do not compare."""
    settings = [similarity, DEPTH, MAX_CHILDREN, MAX_VALUES, MAX_CLUSTERS, MAX_CHARS, MASKS]
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]


def post_merge_key(words):
    """``words`` as text, with every mask, wildcard and word of masks and punctuation as <*>."""
    return " ".join(
        WILDCARD if word == WILDCARD or ONLY_MASKS.match(word) else MASK_TOKEN.sub(WILDCARD, word)
        for word in words
    )


@dataclass
class Pattern:
    """A pattern's row: its creation key, what its cluster's state makes of it, its counts."""

    id: int
    service: str
    cluster_id: int  # 0: the service's "other" pattern
    key: tuple  # its first message's words at the constant and few-valued places
    canonical_id: int = 0  # the id that stands for it and its aliases
    text: str = ""  # its template now, masks by name: what people read
    first_seen: int | None = None  # µs: the earliest timestamp of its records
    last_seen: int | None = None
    records: int = 0  # records given this id, ever


@dataclass
class ClusterRow:
    """A cluster as saved: enough to put it back in its tree (``PatternIndex.restore``)."""

    service: str
    cluster_id: int
    created: tuple
    template: tuple
    places: list  # per word: None (a constant), [values], or True (overflowed)


@dataclass
class Changes:
    """What ``add`` changed since the last ``take_changes``: the store saves it at once."""

    assigned: list = field(default_factory=list)  # (record id, pattern id)
    clusters: list = field(default_factory=list)  # ClusterRow, new or changed
    patterns: list = field(default_factory=list)  # Pattern, new or changed


class PatternIndex:
    """Every service's Drain, places and patterns: the whole state of the one miner."""

    def __init__(self, similarity):
        self.similarity = similarity
        self.masker = Masker()
        self.drains = {}  # service -> Drain
        self.places = {}  # (service, cluster id) -> per word: None | set | OVERFLOWED
        self.created = {}  # (service, cluster id) -> ids of the patterns it created
        self.by_key = {}  # (service, key) -> pattern id
        self.patterns = {}  # id -> Pattern
        self.canonical_keys = {}  # id -> (service, canonical key)
        self.groups = {}  # (service, canonical key) -> ids of the patterns that have it
        self.cache = {}  # (service, message) -> pattern id
        self.last_id = 0
        self._changes = Changes()
        self._dirty_clusters, self._dirty_patterns, self._recompute = set(), set(), set()

    # Mining

    def add(self, record_id, service, message, timestamp):
        """Give the record its pattern; the pattern id."""
        pattern_id = self.cache.get((service, message))
        if pattern_id is None:
            pattern_id = self._mine(service, message)
            if len(message) <= CACHE_MAX_CHARS:
                if len(self.cache) >= CACHE_ENTRIES:
                    self.cache.clear()  # crude but bounded: a miss costs only time
                self.cache[(service, message)] = pattern_id
        pattern = self.patterns[pattern_id]
        pattern.records += 1
        if pattern.first_seen is None or timestamp < pattern.first_seen:
            pattern.first_seen = timestamp
        if pattern.last_seen is None or timestamp > pattern.last_seen:
            pattern.last_seen = timestamp
        self._dirty_patterns.add(pattern_id)
        self._changes.assigned.append((record_id, pattern_id))
        return pattern_id

    def _mine(self, service, message):
        drain = self.drains.get(service)
        if drain is None:
            drain = self.drains[service] = Drain(self.similarity, DEPTH, MAX_CHILDREN)
        words = tuple(self.masker.mask(message[:MAX_CHARS]).split())
        if len(drain.clusters) >= MAX_CLUSTERS and drain.match(words) is None:
            return self._pattern(service, 0, OTHER_KEY)
        cluster, previous = drain.add(words)
        where = (service, cluster.id)
        if previous is None:
            previous = cluster.template
            self.places[where] = [None] * len(words)
            self.created[where] = []
            self._dirty_clusters.add(where)
        elif previous != cluster.template:
            self._dirty_clusters.add(where)
            self._recompute.update(self.created[where])
        places = self.places[where]
        key = list(cluster.template)
        for place, word in enumerate(cluster.template):
            if word != WILDCARD or places[place] is OVERFLOWED:
                continue
            seen = places[place]
            if seen is None:  # it has just become a wildcard: its constant was a value too
                seen = places[place] = {previous[place]}
                if MASK_TOKEN.search(previous[place]):
                    places[place] = OVERFLOWED
                    continue
            value = words[place]
            if value not in seen:
                self._dirty_clusters.add(where)
                if len(seen) >= MAX_VALUES or MASK_TOKEN.search(value):
                    places[place] = OVERFLOWED  # a variable after all
                    self._recompute.update(self.created[where])
                    continue
                seen.add(value)
            key[place] = value
        return self._pattern(service, cluster.id, tuple(key))

    def _pattern(self, service, cluster_id, key):
        pattern_id = self.by_key.get((service, key))
        if pattern_id is None:
            self.last_id = pattern_id = self.last_id + 1
            self.patterns[pattern_id] = Pattern(pattern_id, service, cluster_id, key)
            self.by_key[(service, key)] = pattern_id
            if cluster_id:
                self.created[(service, cluster_id)].append(pattern_id)
            self._recompute.add(pattern_id)
        return pattern_id

    # Canonical ids

    def _words(self, pattern):
        """The pattern's words now: its cluster's template, its own values at few-valued places."""
        if not pattern.cluster_id:
            return pattern.key
        template = self.drains[pattern.service].clusters[pattern.cluster_id].template
        places = self.places[(pattern.service, pattern.cluster_id)]
        return tuple(
            own if word == WILDCARD and isinstance(places[place], set) else word
            for place, (word, own) in enumerate(zip(template, pattern.key, strict=True))
        )

    def _canonicalize(self):
        touched = set()
        for pattern_id in self._recompute:
            pattern = self.patterns[pattern_id]
            words = self._words(pattern)
            pattern.text = " ".join(words)
            key = (pattern.service, post_merge_key(words))
            old = self.canonical_keys.get(pattern_id)
            if key != old:
                if old is not None:
                    self.groups[old].discard(pattern_id)
                    touched.add(old)
                self.groups.setdefault(key, set()).add(pattern_id)
                self.canonical_keys[pattern_id] = key
                touched.add(key)
            self._dirty_patterns.add(pattern_id)
        self._recompute.clear()
        for key in touched:
            members = self.groups[key]
            if not members:
                del self.groups[key]
                continue
            smallest = min(members)
            for pattern_id in members:
                if self.patterns[pattern_id].canonical_id != smallest:
                    self.patterns[pattern_id].canonical_id = smallest
                    self._dirty_patterns.add(pattern_id)

    def canonical(self, pattern_id):
        """The id that stands for ``pattern_id`` now."""
        self._canonicalize()
        return self.patterns[pattern_id].canonical_id

    def take_changes(self):
        """The Changes since the last call, canonical ids up to date; the index forgets them."""
        self._canonicalize()
        changes, self._changes = self._changes, Changes()
        changes.clusters = [self._cluster_row(where) for where in sorted(self._dirty_clusters)]
        changes.patterns = [self.patterns[i] for i in sorted(self._dirty_patterns)]
        self._dirty_clusters.clear()
        self._dirty_patterns.clear()
        return changes

    # Saved state

    def _cluster_row(self, where):
        service, cluster_id = where
        cluster = self.drains[service].clusters[cluster_id]
        places = [sorted(place) if isinstance(place, set) else place
                  for place in self.places[where]]
        return ClusterRow(service, cluster_id, cluster.created, cluster.template, places)

    def restore(self, clusters, patterns):
        """Rebuild the state from saved ClusterRows and Patterns (both in id order)."""
        for row in clusters:
            drain = self.drains.get(row.service)
            if drain is None:
                drain = self.drains[row.service] = Drain(self.similarity, DEPTH, MAX_CHILDREN)
            drain.restore(Cluster(row.cluster_id, row.created, row.template))
            where = (row.service, row.cluster_id)
            self.places[where] = [set(place) if isinstance(place, list) else place
                                  for place in row.places]
            self.created[where] = []
        for pattern in patterns:
            self.patterns[pattern.id] = pattern
            self.by_key[(pattern.service, pattern.key)] = pattern.id
            if pattern.cluster_id:
                self.created[(pattern.service, pattern.cluster_id)].append(pattern.id)
            self.last_id = max(self.last_id, pattern.id)
        self._recompute.update(self.patterns)
        self._canonicalize()
        self._dirty_patterns.clear()  # as saved: nothing to write back
