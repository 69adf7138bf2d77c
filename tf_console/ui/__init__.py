"""The Textual console (``tf-console demo`` / ``tf-console run``).

It talks only to :class:`tf_console.console.ConsoleService`; see
:mod:`tf_console.ui.app` for the application and :mod:`tf_console.ui.dashboard`
for the three live panes.
"""

from tf_console.ui.app import ConsoleApp, ConsoleOptions, run_console

__all__ = ["ConsoleApp", "ConsoleOptions", "run_console"]
