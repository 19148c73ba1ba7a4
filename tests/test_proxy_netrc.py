"""proxy_for reads the proxy from the environment only: not the user's ~/.netrc ($NETRC)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.request import getproxies, proxy_bypass

import pytest

from heartfly.notify.proxy import proxy_for


def test_a_netrc_default_entry_is_not_sent_to_the_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("default login someone password s3cret-from-netrc\n")
    monkeypatch.setenv("NETRC", str(netrc))
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    via = proxy_for("https://hooks.example.com/services/x")
    assert str(via["proxy"]) == "http://proxy.example:3128"
    assert via["proxy_auth"] is None  # the netrc's login is for no proxy


def test_the_proxy_urls_own_login_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://u:p@proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    via = proxy_for("https://hooks.example.com/x")
    assert str(via["proxy"]) == "http://proxy.example:3128"
    assert (via["proxy_auth"].login, via["proxy_auth"].password) == ("u", "p")
    assert proxy_for("https://internal.example/x") == {}
    assert proxy_for("ftp://hooks.example.com/x") == {}


def test_a_change_of_the_proxy_environment_is_followed_by_the_next_request(monkeypatch: pytest.MonkeyPatch) -> None:
    # proxy_for remembers its answers (reading the whole environment per webhook cost a sixth of a
    # storm's event loop), keyed by the variables it depends on: a change is not answered from memory.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
    url = "https://hooks.example.com/y"
    assert proxy_for(url) == {}
    monkeypatch.setenv("HTTPS_PROXY", "http://first.example:3128")
    assert str(proxy_for(url)["proxy"]) == "http://first.example:3128"
    monkeypatch.setenv("https_proxy", "http://second.example:3128")  # the lower-case name wins, as in urllib
    assert str(proxy_for(url)["proxy"]) == "http://second.example:3128"
    monkeypatch.setenv("NO_PROXY", "hooks.example.com")
    assert proxy_for(url) == {}
    monkeypatch.delenv("NO_PROXY")
    proxy_for(url)["proxy"] = "changed by a caller"  # a copy: what is remembered stays as it was
    assert str(proxy_for(url)["proxy"]) == "http://second.example:3128"


def test_a_proxy_variable_named_in_any_case_is_followed_as_urllib_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib lowers the names it reads (Https_Proxy, No_Proxy count): proxy_for's memory was keyed
    # by four spellings, and a change to another was answered with the proxy it had before.
    for name in os.environ:
        if name[-6:].lower() == "_proxy" or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)
    url = "https://hooks.example.com/any-case"
    monkeypatch.setenv("Https_Proxy", "http://first.example:3128")
    assert str(proxy_for(url)["proxy"]) == getproxies()["https"] == "http://first.example:3128"
    monkeypatch.setenv("Https_Proxy", "http://second.example:3128")
    assert str(proxy_for(url)["proxy"]) == getproxies()["https"] == "http://second.example:3128"
    monkeypatch.setenv("HTTPS_proxy", "")  # a lower-case _proxy that is empty: none, in urllib's second pass
    assert "https" not in getproxies()
    assert proxy_for(url) == {}
    monkeypatch.delenv("HTTPS_proxy")
    monkeypatch.setenv("No_Proxy", "hooks.example.com")
    assert proxy_bypass("hooks.example.com")
    assert proxy_for(url) == {}
