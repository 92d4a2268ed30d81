"""Pieces of OpenAPI shared by the endpoints' contracts, whichever layer writes them."""

RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                               "schema": {"type": "integer"}}}


def json_content(schema):
    """A JSON body of ``schema``: a component's name or an inline schema."""
    if isinstance(schema, str):
        schema = {"$ref": f"#/components/schemas/{schema}"}
    return {"application/json": {"schema": schema}}


def error_response(description):
    """A response in the collector's error shape."""
    return {"description": description, "content": json_content("Error")}
