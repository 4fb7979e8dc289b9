"""``python -m trs_analytics.cli``: the ``trs-analytics`` command."""

from trs_analytics.cli import main

if __name__ == "__main__":  # imported (a walk over the package's modules): nothing runs
    main()
