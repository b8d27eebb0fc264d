"""Reading a report's HTML back: which figures each section holds, and their titles."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Mark:
    tag: str
    classes: set[str]
    section: str
    attrs: dict[str, str]
    title: str = ""


@dataclass
class Page(HTMLParser):
    """Every element of a report page, with the id of the section it sits in."""

    marks: list[Mark] = field(default_factory=list)
    _sections: list[str] = field(default_factory=list)
    _stack: list[Mark] = field(default_factory=list)
    _in_title: Mark | None = None
    texts: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        HTMLParser.__init__(self)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self._sections.append(a.get("id", ""))
        if tag == "title" and self._stack:
            self._in_title = self._stack[-1]
            return
        m = Mark(tag, set(a.get("class", "").split()), self.section, a)
        self.marks.append(m)
        self._stack.append(m)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = None
            return
        if tag == "section" and self._sections:
            self._sections.pop()
        while self._stack:
            if self._stack.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._in_title is not None:
            self._in_title.title += data
        self.texts[self.section].append(data)

    @property
    def section(self) -> str:
        return self._sections[-1] if self._sections else ""

    def find(self, tag: str, cls: str | None = None, section: str | None = None) -> list[Mark]:
        return [
            m
            for m in self.marks
            if m.tag == tag
            and (cls is None or cls in m.classes)
            and (section is None or m.section == section)
        ]

    def text(self, section: str) -> str:
        return " ".join(" ".join(self.texts[section]).split())


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page
