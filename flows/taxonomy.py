"""The trust-owned, versioned category list (flows/data/taxonomy.toml)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).parent / "data" / "taxonomy.toml"


@dataclass(frozen=True)
class Category:
    code: str
    label: str


@dataclass(frozen=True)
class Taxonomy:
    version: str
    categories: tuple[Category, ...]

    def label(self, code: str) -> str:
        for c in self.categories:
            if c.code == code:
                return c.label
        return code

    def codes(self) -> list[str]:
        return [c.code for c in self.categories]


@lru_cache
def _versions() -> tuple[str, dict[str, Taxonomy]]:
    raw = tomllib.loads(DATA.read_text())
    versions = {v["version"]: Taxonomy(v["version"], tuple(Category(**c) for c in v["categories"]))
                for v in raw["versions"]}
    return raw["current"], versions


def current() -> Taxonomy:
    cur, versions = _versions()
    return versions[cur]


def version(v: str) -> Taxonomy:
    """The taxonomy a record was filed under (labels for old records stay as they were)."""
    return _versions()[1][v]


def label(code: str, taxonomy_version: str | None = None) -> str:
    tax = version(taxonomy_version) if taxonomy_version else current()
    return tax.label(code)
