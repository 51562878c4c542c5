from tests.conftest import sign_in


def test_sign_in_flow(client, make_user, make_site, make_trial, session):
    make_site(); make_trial()
    make_user("ann", "coordinator:MOOD-CBT:LON")
    session.commit()
    r = client.get("/")
    print(r.status_code, r.headers.get("Location"))
    r = sign_in(client, "ann")
    print(r.status_code, r.headers.get("Location"), r.headers.getlist("Set-Cookie"))
    r = client.get("/")
    print(r.status_code, r.get_data(as_text=True)[:3000])
    r = client.get("/admin/users")
    print(r.status_code)
    r = client.get("/api/v1/users")
    print(r.status_code, r.json)
    r = client.get("/api/v1/openapi.json")
    print(r.status_code, list(r.json["paths"]))
