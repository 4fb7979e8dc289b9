"""``python -m trs_analytics.cli``: the ``trs-analytics`` command."""

from trs_analytics.cli import main

main()
