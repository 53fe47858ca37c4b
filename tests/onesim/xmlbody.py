"""OpenNebula template text and XML bodies, as oned reads and writes them.

`parse_template` reads the attribute syntax that one.image.allocate and
one.image.update take (``KEY = "value"`` lines, ``KEY = [ A = "x", B = "y" ]``
vectors, backslash escapes inside double quotes) and refuses what oned's parser
refuses.  The ``*_xml`` functions render the element names pyone's generated
bindings (pyone/bindings/supbind.py) parse.
"""

import re
from typing import Dict, List, Tuple, Union

Value = Union[str, Dict[str, str]]
Template = List[Tuple[str, Value]]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


class TemplateSyntaxError(ValueError):
    pass


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self, newlines: bool = True) -> None:
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "#":  # comment to end of line
                while self.pos < len(self.text) and self.text[self.pos] != "\n":
                    self.pos += 1
            elif ch in " \t\r" or (newlines and ch == "\n"):
                self.pos += 1
            else:
                break

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            raise TemplateSyntaxError(
                f"syntax error, expected {ch!r} at offset {self.pos}: "
                f"{self.text[self.pos:self.pos + 20]!r}")
        self.pos += 1

    def key(self) -> str:
        m = _KEY.match(self.text, self.pos)
        if not m:
            raise TemplateSyntaxError(
                f"syntax error, expected an attribute name at offset {self.pos}")
        self.pos = m.end()
        return m.group(0).upper()

    def value(self, stop: str) -> str:
        if self.peek() == '"':
            self.pos += 1
            out = []
            while True:
                if self.pos >= len(self.text):
                    raise TemplateSyntaxError("syntax error, unterminated string")
                ch = self.text[self.pos]
                if ch == "\\" and self.pos + 1 < len(self.text):
                    out.append(self.text[self.pos + 1])
                    self.pos += 2
                    continue
                self.pos += 1
                if ch == '"':
                    return "".join(out)
                out.append(ch)
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in stop:
            if self.text[self.pos] in '"[':
                raise TemplateSyntaxError(
                    f"syntax error, unexpected {self.text[self.pos]!r} in unquoted value")
            self.pos += 1
        return self.text[start:self.pos].strip()


def parse_template(text: str) -> Template:
    r = _Reader(text)
    out: Template = []
    while True:
        r.skip()
        if not r.peek():
            return out
        key = r.key()
        r.skip(newlines=False)
        r.expect("=")
        r.skip(newlines=False)
        if r.peek() == "[":
            r.pos += 1
            vector: Dict[str, str] = {}
            while True:
                r.skip()
                if r.peek() == "]":
                    r.pos += 1
                    break
                sub = r.key()
                r.skip()
                r.expect("=")
                r.skip()
                vector[sub] = r.value(",]\n")
                r.skip()
                if r.peek() == ",":
                    r.pos += 1
            out.append((key, vector))
        else:
            out.append((key, r.value("\n")))
        r.skip(newlines=False)
        if r.peek() not in ("", "\n"):
            raise TemplateSyntaxError(f"syntax error, trailing text after {key}")


def merge_template(base: Template, extra: Template) -> Template:
    """one.image.update type 1: replace attributes present in `extra`, keep others."""
    names = {k for k, _ in extra}
    return [(k, v) for k, v in base if k not in names] + list(extra)


def template_get(tmpl: Template, key: str) -> str:
    for k, v in tmpl:
        if k == key and isinstance(v, str):
            return v
    return ""


# XML ----------------------------------------------------------------------

_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def cdata(text: object) -> str:
    s = _XML_BAD.sub("", str(text)).replace("]]>", "]]]]><![CDATA[>")
    return f"<![CDATA[{s}]]>"


def el(name: str, value: object) -> str:
    if isinstance(value, int):
        return f"<{name}>{value}</{name}>"
    return f"<{name}>{cdata(value)}</{name}>"


def template_xml(tmpl: Template, tag: str = "TEMPLATE") -> str:
    parts = []
    for k, v in tmpl:
        if isinstance(v, dict):
            parts.append(f"<{k}>" + "".join(el(a, b) for a, b in v.items()) + f"</{k}>")
        else:
            parts.append(el(k, v))
    return f"<{tag}>" + "".join(parts) + f"</{tag}>"


PERM_NAMES = ("OWNER_U", "OWNER_M", "OWNER_A", "GROUP_U", "GROUP_M", "GROUP_A",
              "OTHER_U", "OTHER_M", "OTHER_A")


def permissions_xml(perms: Tuple[int, ...]) -> str:
    return "<PERMISSIONS>" + "".join(el(n, b) for n, b in zip(PERM_NAMES, perms)) \
        + "</PERMISSIONS>"
