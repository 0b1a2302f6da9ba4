"""The dashboard: one static page (static/dashboard.html: HTML + vanilla JS, no build step) and
the JSON API it reads (the run service's, chalicelib/service/).

    views      moved to chalicelib/service/views.py (a run's graph, a task's detail); re-exported
    local_api  the local server's routes onto the run service, the same as the Chalice app's
    executor   runs a submitted or resumed local run in its own process
    server     `updraft ui`: ThreadingHTTPServer on 127.0.0.1 serving the page and an API
    page       the page's text (the Chalice app serves the same file at GET /)
"""
