"""What counts as text: the code points a client's string may hold.

PostgreSQL's ``text`` cannot store NUL, and no upstream has a use for control characters,
surrogates or noncharacters: a value holding one is a probe or a mistake, refused before it
reaches anything. Refused:

- C0 controls (U+0000–U+001F) except tab, line feed and carriage return, DEL (U+007F) and
  the C1 controls (U+0080–U+009F);
- surrogates (U+D800–U+DFFF), which are not characters on their own;
- the 66 noncharacters: U+FDD0–U+FDEF and the last two code points of every plane
  (U+FFFE, U+FFFF, U+1FFFE, … U+10FFFF).

Everything else is text, format characters included (the zero-width space breaks Thai words).
"""

from __future__ import annotations

import re

_NOT_TEXT = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef"
    + "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17))
    + "]"
)


def not_text(value: str) -> str | None:
    """The first code point of ``value`` that is not text, as ``U+XXXX``; None if all are."""
    found = _NOT_TEXT.search(value)
    return None if found is None else f"U+{ord(found.group()):04X}"
