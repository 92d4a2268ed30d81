"""Reading stored records: query parameters, pages, follows, counts and exports over a Store."""
