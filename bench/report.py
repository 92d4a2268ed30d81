"""The printed table and the JSON file of a run."""

import json
from dataclasses import asdict, dataclass

FIGURE_WIDTH = 56
VALUE_WIDTH = 20
TARGET_WIDTH = 14


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure, its value and, for a target, whether it is met."""

    figure: str
    value: str
    target: str = ""
    met: bool | None = None  # None: the figure has no target


def target_row(figure, value, template, target, meets):
    """A row for a figure with a target: ``template`` formats the value, ``meets(value)`` judges it.

    A value of None (nothing was measured) is shown as n/a and misses its target.
    """
    if value is None:
        return Row(figure, "n/a", target, False)
    return Row(figure, template.format(value), target, bool(meets(value)))


def format_table(sections):
    """The table of ``sections``, a list of (title, rows), as text."""
    lines = [_line("figure", "value", "target", "result")]
    for title, rows in sections:
        lines.append("")
        lines.append(f"== {title}")
        for row in rows:
            result = "" if row.met is None else ("pass" if row.met else "MISS")
            lines.append(_line(row.figure, row.value, row.target, result))
    return "\n".join(lines)


def _line(figure, value, target, result):
    line = f"{figure:<{FIGURE_WIDTH}} {value:>{VALUE_WIDTH}}  {target:<{TARGET_WIDTH}} {result}"
    return line.rstrip()


def targets(sections):
    """Every row with a target, as JSON-ready dicts."""
    return [asdict(row) for _title, rows in sections for row in rows if row.met is not None]


def write_json(path, document):
    """Write ``document`` to ``path``, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
