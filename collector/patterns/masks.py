"""The variables a message's words are masked by before mining: one generic list for every
service, each mask a kind of value any log carries (times, addresses, ids, numbers).

A mask replaces what it matches with its kind's name (``<IP>``, ``<NUM>``, ...). Named masks
count as matching words in Drain's similarity, and the kind stays visible in the pattern's
text. The list was designed on the 16 LogHub 2k samples (see README, Patterns): that is where
its figures come from, so they are optimistic for other logs.
"""

import re

# A number inside a word ("eth0", "ssh2") is left alone; one after "_", "-", ":" or "=" is
# masked ("blk_<NUM>", "uid=<NUM>").
_B = r"(?<![A-Za-z0-9])"
_E = r"(?![A-Za-z0-9])"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"

# (regex, kind), applied in this order: time stamps first (so that "Fri Jun 17 07:07:00 2005"
# is one value), the specific kinds next, numbers last.
MASKS = (
    # 2017-05-16 00:00:00.008, 2017-05-16T00:00:00Z, 2015-07-29 17:41:44,747
    (_B + r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}([.,]\d+)?(Z|[+-]\d{2}:?\d{2})?" + _E, "TIME"),
    # Fri Jun 17 07:07:00 2005, Fri Dec 10 19:02:14 EST 2004, Jun 14 15:16:01
    (r"\b(" + _DAY + r",? +)?" + _MONTH + r" +\d{1,2},? +\d{2}:\d{2}:\d{2}([.,]\d+)?"
     r"( +[A-Z]{3,4})?( +\d{4})?" + _E, "TIME"),
    (_B + r"\d{1,2}:\d{2}:\d{2}([.,]\d+)?" + _E, "TIME"),
    # 2005-06-03, 2016/9/27, 17/06/09
    (_B + r"(\d{4}[-/]\d{1,2}[-/]\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4})" + _E, "TIME"),
    (r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>\])]+", "URL"),
    (_B + r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}" + _E,
     "UUID"),
    (r"[\w.+-]+@[\w-]+(\.[\w-]+)+", "EMAIL"),
    # IPv4, with a port or not; a comma-separated list of them is one value
    (_B + r"\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?(,\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?)*" + _E, "IP"),
    # MAC addresses and IPv6-like runs of hex groups
    (_B + r"([0-9a-fA-F]{1,4}:){3,7}[0-9a-fA-F]{1,4}" + _E, "IP"),
    # Unix paths of two segments or more, Windows paths
    (r"(?<![\w/.])(/[\w.@%+~,:=-]+){2,}/?", "PATH"),
    (r"\b[A-Za-z]:\\[^\s\"']+", "PATH"),
    (_B + r"0[xX][0-9a-fA-F]+" + _E, "HEX"),
    # hex strings of 8+ characters holding both a digit and a letter a-f (hashes, ids)
    (_B + r"(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}" + _E, "HEX"),
    # host names: a.b with a port, or three labels and more. Dotted class names
    # (org.apache.X.Y) look the same: messages differing only in one merge.
    (r"(?<![\w.-])([A-Za-z0-9-]+\.)+[A-Za-z][A-Za-z0-9-]*:\d{1,5}" + _E, "HOST"),
    (r"(?<![\w.-])([A-Za-z0-9-]+\.){2,}[A-Za-z][A-Za-z0-9-]*(?![\w-])", "HOST"),
    # numbers: signed, decimal, dotted (versions)
    (_B + r"[-+]?\d+(\.\d+)*" + _E, "NUM"),
)

# Substrings without which a kind cannot match: its regex is skipped for a message that
# has none of them. Masking is most of the miner's time; these guards save a third of it.
_GUARDS = {"URL": ("://",), "UUID": ("-",), "EMAIL": ("@",), "PATH": ("/", ":\\"),
           "HOST": (".",)}
_NEEDS_DIGIT = {"TIME", "UUID", "IP", "HEX", "NUM"}
_DIGIT = re.compile(r"\d")

# A mask as it stands in a masked message, and a word made of masks and punctuation only.
MASK_TOKEN = re.compile(r"<[A-Z*]+>")
ONLY_MASKS = re.compile(r"^(?:<[A-Z*]+>|[^A-Za-z0-9<>])*<[A-Z*]+>(?:<[A-Z*]+>|[^A-Za-z0-9<>])*$")


class Masker:
    """Replaces every value a mask of ``MASKS`` matches by ``<KIND>``."""

    def __init__(self, masks=MASKS):
        self.steps = [
            (re.compile(regex).sub, f"<{kind}>", kind in _NEEDS_DIGIT, _GUARDS.get(kind))
            for regex, kind in masks
        ]

    def mask(self, message):
        """``message`` with its variables masked."""
        has_digit = _DIGIT.search(message) is not None
        for substitute, name, needs_digit, guard in self.steps:
            if needs_digit and not has_digit:
                continue
            if guard is not None and not any(part in message for part in guard):
                continue
            message = substitute(name, message)
        return message
