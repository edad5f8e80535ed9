"""``xdetox compare``: a local page that sets models side by side on one prompt.

A person picks a language, picks or types a prompt and sees, for every model given with
``--model``, k continuations with their toxicity scores from the configured scorer. The pieces:

* :mod:`.models`: the ``LABEL=SOURCE`` specs, loading the models once, k continuations each;
* :mod:`.session`: one comparison (models, scorer, languages, example prompts, one lock) and
  the checking of a request;
* :mod:`.server`: the HTTP server (standard library) and ``page.html``, the page itself.

Why a page of our own rather than Gradio, the field's usual tool for such demos: Gradio is not
installed here, and as an extra it would pull some fifty packages and a front-end bundle into an
environment that has to stay reproducible, all for one form and one JSON endpoint. The standard
library's ``ThreadingHTTPServer`` and one self-contained HTML file with plain JavaScript (no CDN,
no request leaves 127.0.0.1) do that in a few hundred lines that the tests drive in a browser.
"""
