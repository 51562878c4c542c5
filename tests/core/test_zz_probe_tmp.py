from tests.conftest import sign_in
from trials.core.accounts import services
from trials.core.accounts.models import TokenCreate


def test_probe(client, make_user, make_site, make_trial, session):
    make_site(); make_trial()
    _, admin = make_user("adam", "admin")
    _, ann = make_user("ann", "coordinator:MOOD-CBT:LON")
    tok, secret = services.create_token(TokenCreate(name="t", scope="write"), session=session, by=admin)
    session.commit()
    h = {"Authorization": f"Bearer {secret}"}
    r = client.post("/api/v1/sites")
    print("anon post sites", r.status_code, r.json, r.headers)
    r = client.post("/api/v1/sites", json={"code": "PAR", "name": "Paris", "country": "FR"}, headers=h)
    print("admin post sites", r.status_code, r.json)
    r = client.post("/api/v1/sites", json={"code": "lon", "name": "x", "country": 5}, headers=h)
    print("bad", r.status_code, r.json)
    r = client.post("/api/v1/sites", data="notjson", headers=h)
    print("notjson", r.status_code, r.json)
    r = client.get("/api/v1/nope", headers=h)
    print("404", r.status_code, r.json, r.mimetype)
    r = client.get("/api/v1/nope")
    print("404 anon", r.status_code, r.json, r.mimetype)
    r = client.get("/nope")
    print("web 404", r.status_code, r.mimetype)
    r = client.post("/api/v1/users", json={"username": "bob", "printed_name": "Bob", "password": "short"}, headers=h)
    print("short", r.status_code, r.json)
    r = client.post("/api/v1/users", json={"username": "bob", "printed_name": "Bob", "password": "a long enough pass"}, headers=h)
    print("user", r.status_code, r.json)
