"""First run, login, sign-up and password change."""

import pytest
from django.contrib.auth import get_user_model

from chat.models import SiteSettings

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_first_run_check(settings):
    # FirstRunMiddleware remembers that accounts exist; rebuild the stack for every test.
    settings.MIDDLEWARE = list(settings.MIDDLEWARE)


def test_empty_install_sends_every_page_to_setup(client):
    for url in ["/", "/accounts/login/", "/t/1/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == "/setup/"


def test_first_account_becomes_admin_and_is_logged_in(client):
    response = client.post(
        "/setup/",
        {
            "username": "admin",
            "email": "a@example.com",
            "password1": "a long passphrase 7",
            "password2": "a long passphrase 7",
        },
    )
    assert response.status_code == 302
    user = get_user_model().objects.get(username="admin")
    assert user.is_staff and user.is_superuser
    assert client.get("/").status_code == 200


def test_setup_is_closed_once_an_account_exists(client, make_user):
    make_user("first")
    response = client.post(
        "/setup/",
        {
            "username": "intruder",
            "password1": "a long passphrase 7",
            "password2": "a long passphrase 7",
        },
    )
    assert response.status_code == 302
    assert not get_user_model().objects.filter(username="intruder").exists()


def test_setup_shows_password_errors(client):
    response = client.post("/setup/", {"username": "admin", "password1": "123", "password2": "123"})
    assert response.status_code == 200
    assert "This password is too short" in response.content.decode()
    assert not get_user_model().objects.exists()


def test_pages_require_login(client, user):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_login_and_logout(client, make_user):
    make_user("bob", password="s3cret enough pass")
    response = client.post(
        "/accounts/login/", {"username": "bob", "password": "s3cret enough pass"}
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused_with_a_message(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_signup_is_off_by_default(client, user):
    assert client.get("/accounts/signup/").status_code == 404


def test_signup_when_staff_turned_it_on(client, user):
    SiteSettings.objects.update_or_create(pk=1, defaults={"allow_signup": True})
    response = client.post(
        "/accounts/signup/",
        {
            "username": "newbie",
            "password1": "a long passphrase 7",
            "password2": "a long passphrase 7",
        },
    )
    assert response.status_code == 302
    newbie = get_user_model().objects.get(username="newbie")
    assert not newbie.is_staff
    client.post("/accounts/logout/")
    assert "Create an account" in client.get("/accounts/login/").content.decode()


def test_login_page_hides_signup_link_when_off(client, user):
    assert "Create an account" not in client.get("/accounts/login/").content.decode()


def test_change_password(logged_in_client, user):
    response = logged_in_client.post(
        "/accounts/password_change/",
        {
            "old_password": "correct horse 42",
            "new_password1": "another long one 9",
            "new_password2": "another long one 9",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("another long one 9")
