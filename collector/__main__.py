"""The operator's commands as the Makefile runs them: ``python -m collector <command> ...``.

The flask CLI's commands (``collector/ops/cli.py``) with a Unix tool's manners: a bad
setting, a bad argument or a missing database is one line on stderr, ``collector: ...``,
naming the make variable to change, and exit status 1; never a traceback or click's usage
text. Output piped into ``head`` ends quietly.
"""

import os
import sys

import click
from flask.cli import ScriptInfo

from config import ConfigError

from . import create_app

# The commands' parameters by the Makefile's names for them; the others are upper-cased.
MAKE_VARIABLES = {"rate_limit": "RATE", "source": "FROM"}


def make_variable(error):
    """The make variable a click.BadParameter is about."""
    name = error.param.name if error.param is not None else error.param_hint
    return MAKE_VARIABLES.get(name, str(name).upper())


def explain(error):
    """One line for a click error: the make variable, its value, what is allowed."""
    if isinstance(error, click.BadParameter):
        value = getattr(error, "value", None)
        shown = f"={value!r}" if value is not None else ""
        return f"{make_variable(error)}{shown}: {error.message}"
    return error.format_message()


def main(argv=None):
    """Run one command; exit 1 with one line on stderr when it cannot."""
    try:
        app = create_app()
        # Not app.cli.main: it answers errors with click's usage text and a closed pipe with
        # exit status 1; both are answered here.
        args = sys.argv[1:] if argv is None else argv
        with app.cli.make_context("collector", args,
                                  obj=ScriptInfo(create_app=lambda: app)) as context:
            app.cli.invoke(context)
    except click.exceptions.Exit as exc:  # --help, or a command's own status
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        sys.exit(f"collector: {exc}")
    except click.ClickException as exc:
        sys.exit(f"collector: {explain(exc)}")
    except (click.Abort, KeyboardInterrupt):
        sys.exit("collector: interrupted")
    except BrokenPipeError:
        # The reader (head) has what it wanted: nothing more to say, and Python's own
        # flush at exit must not fail on the closed pipe either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    main()
