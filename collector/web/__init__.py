"""The web layer, the only one that imports Flask: errors to HTTP, keys, request ids, timing,
the OpenAPI document built from the views' contracts, and the blueprints."""
