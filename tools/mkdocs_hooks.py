"""mkdocs hooks: pages included from the repository root keep links that work on both.

CHANGELOG.md lives at the root and links ``docs/lab-notes.md``; the site includes it as
docs/changelog.md (pymdownx.snippets), where the same link must read ``lab-notes.md``.
"""

from __future__ import annotations

from typing import Any

INCLUDED_FROM_ROOT = {"changelog.md"}


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Rewrite ``](docs/x)`` to ``](x)`` in the pages that include a root file."""
    if page.file.src_uri in INCLUDED_FROM_ROOT:
        return markdown.replace("](docs/", "](")
    return markdown
