"""Development tools shared by the tests, the benchmarks and the scripts (not shipped).

- :mod:`devtools.prefect_harness`: start and stop a real Prefect server on 127.0.0.1.
- :mod:`devtools.prefect_lines`: the Prefect lines tested, each from its own virtualenv.
- :mod:`devtools.workload`: a known workload and the ground truth it records.
"""
