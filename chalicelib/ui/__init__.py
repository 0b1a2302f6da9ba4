"""The dashboard: one static page (static/dashboard.html: HTML + vanilla JS, no build step) and
the JSON API it reads (the run service's, chalicelib/service/; over the local runtime through
chalicelib/backends/local/api.py, which the SDK's local transport is too).

    views      moved to chalicelib/service/views.py (a run's graph, a task's detail); re-exported
    server     `updraft ui`: ThreadingHTTPServer on 127.0.0.1 serving the page and an API
    page       the page's text (the Chalice app serves the same file at GET /)
"""
