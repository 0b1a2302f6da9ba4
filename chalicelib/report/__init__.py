"""`updraft report RUN`: a self-contained HTML page and PNG charts of one run.

    model     RunData: a run's tasks as plain values (from the local store or the JSON API)
    timeline  lanes, concurrency over time, per-type time and cost (pure, no matplotlib)
    charts    Gantt, DAG and concurrency PNGs (matplotlib, imported only when drawing)
    page      the HTML page, PNGs embedded as data URIs (opens without a network)
    build     write_report(): all of the above into one folder

Importing this package imports no chart library: matplotlib is an optional extra
(`[project.optional-dependencies] report`), loaded the first time a chart is drawn.
"""
