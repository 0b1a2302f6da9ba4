"""The dashboard: one static page (static/dashboard.html: HTML + vanilla JS, no build step) and
the JSON API it reads.

    views      the JSON bodies the page needs beyond the run API: a run's graph, a task's detail
    local_api  the API over the local runtime, same routes and shapes as the Chalice app's
    executor   runs a submitted or resumed local run in its own process
    server     `updraft ui`: ThreadingHTTPServer on 127.0.0.1 serving the page and an API
    page       the page's text (the Chalice app serves the same file at GET /)
"""
