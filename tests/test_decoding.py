"""Large JSON arrays are parsed a piece at a time: the same records and errors, less memory."""

import tracemalloc

import orjson
import pytest

from collector.errors import InvalidInput
from collector.ingest.decoding import PIECE_BYTES, decode_json


def _records(count, message="user logged in"):
    return [{"service": "api", "severity": "info", "message": f"{message} {i}",
             "attributes": {"n": i, "tags": [{"k": "a"}, {"k": "b"}]}} for i in range(count)]


def _large(records, at_least=3 * PIECE_BYTES):
    body = orjson.dumps(records)
    assert len(body) > at_least, "make the body larger than several pieces"
    return body


def test_a_large_array_decodes_to_the_records_the_whole_parse_gives():
    # Every record holds "},{" twice where no cut may fall: between the objects of a nested
    # array, and inside a string.
    body = _large(_records(60_000, 'payload [{"a": {}},{"b": 2}]'))

    assert b'}},{\\"b' in body and b'"k":"a"},{"k"' in body
    assert decode_json(body) == orjson.loads(body)


def test_a_large_array_with_whitespace_around_it_decodes_the_same():
    body = b"\n  " + orjson.dumps(_records(40_000), option=orjson.OPT_APPEND_NEWLINE) + b" \r\n"

    assert len(body) > 2 * PIECE_BYTES
    assert decode_json(body) == orjson.loads(body)


@pytest.mark.parametrize("damage", ["trailing comma", "broken record", "two arrays", "not utf-8"])
def test_a_large_invalid_array_fails_where_the_whole_parse_says(damage):
    body = _large(_records(40_000))
    middle = body.index(b'{"service"', len(body) // 2)
    body = {
        "trailing comma": body[:-1] + b",]",
        "broken record": body[:middle] + b'{"service" "api"},' + body[middle:],
        "two arrays": body + b" " + body,
        "not utf-8": body[:middle] + b'{"message": "\xff"},' + body[middle:],
    }[damage]
    with pytest.raises(orjson.JSONDecodeError) as whole:
        orjson.loads(body)

    with pytest.raises(InvalidInput) as raised:
        decode_json(body)

    assert raised.value.code == "malformed_json"
    if damage != "not utf-8":  # that one names the byte, whatever the parser says
        assert (raised.value.details["line"], raised.value.details["column"]) == (
            whole.value.lineno, whole.value.colno)


@pytest.mark.parametrize("message", ["user logged in", 'payload [{"a": {}},{"b": 2}]'])
def test_decoding_a_large_array_holds_a_fraction_of_what_parsing_it_whole_does(message):
    body = _large(_records(40_000, message))

    def peak(parse):
        tracemalloc.start()
        try:
            kept = parse(body)
            return tracemalloc.get_traced_memory()[1], kept
        finally:
            tracemalloc.stop()

    whole, records = peak(orjson.loads)
    del records
    in_pieces, records = peak(decode_json)

    assert len(records) == 40_000
    assert in_pieces < 0.6 * whole, (in_pieces, whole)
