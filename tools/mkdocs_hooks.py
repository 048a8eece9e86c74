"""mkdocs hooks (mkdocs.yml ``hooks:``): the site shows files that live outside docs/.

CHANGELOG.md stays at the repository's root, where people and tools look for it; the site's
docs/changelog.md page shows its text, with its links to ``docs/...`` made relative to
docs/ so that they resolve in the site as they do on a repository browser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FROM_ROOT = {"changelog.md": "CHANGELOG.md"}


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """The text of the root file a page stands for, links rewritten; other pages as they are."""
    source = FROM_ROOT.get(page.file.src_uri)
    if source is None:
        return markdown
    return (ROOT / source).read_text().replace("](docs/", "](")
