"""Log patterns: message templates mined per service (Drain, with generic masks, a split of
few-valued places and a post-merge), and pattern ids that stay stable while templates evolve.

``masks`` (the variables), ``drain`` (the tree), ``index`` (pattern ids and their aliases, the
miner's whole state). Plain Python, no storage: ``ops.miner`` runs it over the store.
"""
