"""The studio: a local web page where the four factors are live controls (`stylevid studio`).

app.py serves the page (static/) and its JSON API; backend.py renders views, exports and uploads on
one worker thread (worker.py: the latest request of a page wins); view.py checks what the page sends
and turns it into codes; snippet.py writes the Python that reproduces a view; uploads.py checks and
keeps uploaded photos' identities; heatmap.py draws the network's measured leakage.
"""
