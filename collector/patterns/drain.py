"""Drain (He et al., "Drain: An Online Log Parsing Approach with Fixed Depth Tree", ICWS 2017):
the online clustering of one service's masked messages into templates.

A message is split into words. The tree's first level is the word count, the next
``depth - 2`` levels its first words (a word holding a digit goes to the wildcard child, as
does any word once a node has ``max_children``); a leaf holds clusters. The message joins the
leaf's most similar cluster (the share of places where the template has the message's word;
``<*>`` never counts) if that share reaches ``similarity``, and the template gets ``<*>``
wherever the two differ; otherwise it starts a cluster of its own.

The tree's walk, its tie-breaks and its wildcard rules are drain3 0.9.11's (the library the
study measured), so that the figures it reported hold here; the state is ours, so that it can
be saved as rows and rebuilt from them (``restore``).
"""

WILDCARD = "<*>"


class Cluster:
    """A template and the words it was created with (its place in the tree)."""

    __slots__ = ("id", "created", "template")

    def __init__(self, cluster_id, created, template=None):
        self.id = cluster_id
        self.created = tuple(created)
        self.template = self.created if template is None else tuple(template)


class _Node:
    __slots__ = ("children", "clusters")

    def __init__(self):
        self.children = {}
        self.clusters = []


class Drain:
    """The clusters of one service's messages, ids 1, 2, 3... in order of creation."""

    def __init__(self, similarity, depth=4, max_children=1000):
        if depth < 3:
            raise ValueError("Drain's depth must be at least 3")
        self.similarity = similarity
        self.prefix_levels = depth - 2  # word levels below the word-count level
        self.max_children = max_children
        self.root = {}  # word count -> _Node
        self.clusters = {}  # id -> Cluster

    def add(self, words):
        """Put the message ``words`` (a tuple) in a cluster; (the Cluster, its template before,
        None when it is new)."""
        cluster = self.match(words)
        if cluster is None:
            cluster = Cluster(len(self.clusters) + 1, words)
            self.restore(cluster)
            return cluster, None
        previous = cluster.template
        cluster.template = tuple(
            kept if kept == word else WILDCARD for kept, word in zip(previous, words, strict=True)
        )
        return cluster, previous

    def restore(self, cluster):
        """Place a Cluster in the tree by the words it was created with (never moved since)."""
        self.clusters[cluster.id] = cluster
        words = cluster.created
        node = self.root.get(len(words))
        if node is None:
            node = self.root[len(words)] = _Node()
        for level, word in enumerate(words, start=1):
            if level >= self.prefix_levels or level >= len(words):
                break
            node = self._child_for(node, word)
        node.clusters.append(cluster.id)

    def _child_for(self, node, word):
        children = node.children
        if word in children:
            return children[word]
        if any(character.isdigit() for character in word):
            key = WILDCARD
        elif WILDCARD in children:
            key = word if len(children) < self.max_children else WILDCARD
        elif len(children) + 1 < self.max_children:
            key = word
        else:  # the last free child is the wildcard's
            key = WILDCARD
        child = children.get(key)
        if child is None:
            child = children[key] = _Node()
        return child

    def match(self, words):
        """The cluster ``words`` would join, or None."""
        node = self.root.get(len(words))
        if node is None:
            return None
        if not words:
            return self.clusters[node.clusters[0]]
        for level, word in enumerate(words, start=1):
            if level >= self.prefix_levels or level == len(words):
                break
            node = node.children.get(word) or node.children.get(WILDCARD)
            if node is None:
                return None
        best, best_similarity, best_wildcards = None, -1.0, -1
        for cluster_id in node.clusters:
            cluster = self.clusters[cluster_id]
            same = wildcards = 0
            for kept, word in zip(cluster.template, words, strict=True):
                if kept == WILDCARD:
                    wildcards += 1
                elif kept == word:
                    same += 1
            similarity = same / len(words)
            if similarity > best_similarity or (
                similarity == best_similarity and wildcards > best_wildcards
            ):
                best, best_similarity, best_wildcards = cluster, similarity, wildcards
        return best if best_similarity >= self.similarity else None
