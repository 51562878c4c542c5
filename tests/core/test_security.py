"""Security defaults: response headers, the session cookie, and error pages by channel."""

from http.cookies import SimpleCookie
from typing import Any

import pytest

from tests.conftest import PASSWORD, sign_in


def assert_security_headers(response: Any) -> None:
    csp = response.headers["Content-Security-Policy"]
    directives = {d.strip().split()[0]: d.strip().split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["default-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.fixture
def coordinator(make_site: Any, make_trial: Any, make_user: Any) -> Any:
    make_site()
    make_trial()
    return make_user("ann", "coordinator:MOOD-CBT:LON")


@pytest.mark.parametrize(
    ("path", "status", "mimetype"),
    [
        ("/sign-in", 200, "text/html"),  # HTML page
        ("/", 302, "text/html"),  # redirect to sign-in
        ("/no-such-page", 404, "text/html"),  # HTML error page
        ("/api/v1/openapi.json", 200, "application/json"),  # JSON
        ("/api/v1/me", 401, "application/problem+json"),  # API error
        ("/static/css/trials.css", 200, "text/css"),  # static file
    ],
)
def test_security_headers_on_every_kind_of_response(
    client: Any, path: str, status: int, mimetype: str
) -> None:
    response = client.get(path)
    response.close()  # static files are streamed
    assert response.status_code == status
    assert response.mimetype == mimetype
    assert_security_headers(response)


def test_html_pages_are_not_cached(client: Any, coordinator: Any) -> None:
    assert client.get("/sign-in").headers["Cache-Control"] == "no-store"
    sign_in(client, "ann")
    assert client.get("/account").headers["Cache-Control"] == "no-store"


def test_session_cookie_at_sign_in_is_secure_httponly_and_samesite_lax(
    app: Any, client: Any, coordinator: Any
) -> None:
    response = sign_in(client, "ann")
    assert response.status_code == 302
    name = app.config["SESSION_COOKIE_NAME"]
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}=")]
    assert len(headers) == 1
    morsel = SimpleCookie(headers[0])[name]
    assert morsel.value
    assert morsel["secure"] is True
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"
    # No remember-me cookie: a web session ends with the browser or the idle timeout.
    assert not [h for h in response.headers.getlist("Set-Cookie") if h.startswith("remember_token=")]


def test_session_cookie_does_not_carry_the_password(client: Any, coordinator: Any) -> None:
    response = sign_in(client, "ann")
    assert PASSWORD not in " ".join(response.headers.getlist("Set-Cookie"))
    with client.session_transaction() as web_session:
        assert PASSWORD not in repr(dict(web_session))


def test_web_error_pages_are_html(client: Any, coordinator: Any) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "<html" in response.get_data(as_text=True)
    assert "404" in response.get_data(as_text=True)

    sign_in(client, "ann")
    forbidden = client.get("/admin/users")
    assert forbidden.status_code == 403
    assert forbidden.mimetype == "text/html"
    assert "403" in forbidden.get_data(as_text=True)

    refused = client.post("/sign-out")  # no CSRF token
    assert refused.status_code == 400
    assert refused.mimetype == "text/html"


def test_web_client_asking_for_json_gets_problem_json(client: Any) -> None:
    response = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == 404


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer trl_unknown"}, 401), ({"Accept": "text/html"}, 401)],
)
def test_api_errors_are_problem_json_even_for_browsers(
    client: Any, headers: dict[str, str], status: int
) -> None:
    response = client.get("/api/v1/users", headers=headers)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert (body["status"], body["title"]) == (status, "Authentication required")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="trials"'


def test_unexpected_errors_do_not_leak_details(app: Any, client: Any) -> None:
    def boom() -> Any:
        raise RuntimeError("secret internal detail")

    app.add_url_rule("/boom", "boom", boom)
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    text = response.get_data(as_text=True)
    assert "secret internal detail" not in text
    assert "Traceback" not in text
    assert_security_headers(response)


def test_no_debugger_outside_development(app: Any) -> None:
    assert app.debug is False
