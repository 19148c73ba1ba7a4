"""The dashboard's links and redirects, written relative to the page they are on.

A proxy may serve Heartfly below a path (https://ops.example.com/heartfly/, the proxy stripping
the path on its way in), and the same pages are also reached straight at the listen address. A
root-absolute link ("/checks/x") leaves the path in the first case; a link relative to the page
("../checks/x" from /checks/y) is right in both, with nothing to configure. Paths in the code stay
root-absolute ("app paths"); only what a browser reads is made relative.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web


def root(request: web.Request) -> str:
    """From the page this request asked for to the app's root: "./" for /, /login; "../" for
    /checks/NAME; "../../" for a form's /checks/NAME/pause (its answer's Location resolves there)."""
    depth = request.raw_path.split("?", 1)[0].count("/") - 1
    return "../" * depth or "./"


def here(request: web.Request, target: str) -> str:
    """An app path ("/checks/x?flips=all") as a link from this request's page."""
    assert target.startswith("/"), target
    return root(request) + target[1:]


def app_path(browser_path: str, public_url: str) -> str:
    """A path a browser saw (a Referer's) as an app path: without public_url's path, where the
    proxy that serves Heartfly there added it."""
    prefix = urlsplit(public_url).path.rstrip("/")
    if prefix and (browser_path == prefix or browser_path.startswith(prefix + "/")):
        return browser_path[len(prefix) :] or "/"
    return browser_path
