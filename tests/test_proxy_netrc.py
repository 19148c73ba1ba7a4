"""proxy_for reads the proxy from the environment only: not the user's ~/.netrc ($NETRC)."""

from __future__ import annotations

from pathlib import Path

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
