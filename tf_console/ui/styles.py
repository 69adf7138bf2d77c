"""Where the console's stylesheets live.

The canonical files are the repository's top-level ``styles/*.tcss`` (one per
screen or widget family), found from this package's location in an editable
install; a non-editable install has no repository around it and uses the copy
shipped under ``tf_console/ui/styles/`` (a test keeps the two identical).
"""

from __future__ import annotations

from pathlib import Path, PurePath

STYLESHEETS: tuple[str, ...] = (
    "app.tcss",
    "dashboard.tcss",
    "modals.tcss",
    "detail.tcss",
    "health.tcss",
    "stock.tcss",
    "analytics.tcss",
    "alerts.tcss",
)

PACKAGE_STYLES = Path(__file__).resolve().parent / "styles"
REPOSITORY_STYLES = Path(__file__).resolve().parent.parent.parent / "styles"


def styles_dir() -> Path:
    if all((REPOSITORY_STYLES / name).is_file() for name in STYLESHEETS):
        return REPOSITORY_STYLES
    return PACKAGE_STYLES


def stylesheet_paths() -> list[str | PurePath]:
    folder = styles_dir()
    return [folder / name for name in STYLESHEETS]
