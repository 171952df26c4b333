"""English and Simplified Chinese (README "Languages"): every string marked, the zh_Hans catalogs
complete, the language from the browser or the user menu's switch, remembered."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import polib
import pytest
from asgiref.sync import sync_to_async
from django.template import Context, Template
from django.test.utils import override_settings
from django.utils import translation
from playwright.sync_api import Page, expect

from chat.models import SiteSettings, Turn
from devtools import i18n
from devtools.template_strings import unmarked, unmarked_in
from tests import test_csp
from tests.support.browser import log_in
from tests.support.seed import seed_data_dir
from tests.ws import ORIGIN, finished, receive_until, socket

ROOT = Path(__file__).resolve().parent.parent
CATALOGS = [i18n.catalog_path(domain) for domain in i18n.DOMAINS]
CHINESE = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9,en;q=0.5"}


def html_lang(response) -> str:
    return re.search(r'<html lang="([^"]+)"', response.content.decode())[1]


# Every string marked ----------------------------------------------------------------------------


def test_the_checker_finds_what_a_reader_would_see_in_english():
    assert unmarked("<p>Hello <b>there</b></p>") == ["Hello", "there"]
    assert unmarked('<button aria-label="Close">×</button>') == ['<button aria-label="Close">']
    assert unmarked('<input type="submit" value="Save">') == ['<input value="Save">']
    assert unmarked('{% include "x.html" with caption="By day" %}') == [
        "literal 'By day' in '{% include \"x.html\" with caption=\"By day\" %}'"
    ]
    assert unmarked('{{ name|default:"nobody" }}') == []  # a variable is dropped whole…
    assert unmarked('{% with who=name|default:"nobody" %}{% endwith %}') != []  # …a tag is read


def test_the_checker_accepts_marked_strings_code_and_the_brand():
    marked = (
        '{% load i18n %}<p title="{% translate "Close" %}">{% translate "Hello" %}</p>'
        "<p>{% blocktranslate with n=x %}Hello {{ n }}{% endblocktranslate %}</p>"
        "<code>python manage.py migrate</code> <span>‹ 2/3 ›</span> <b>Switchboard</b>"
        '{% include "x.html" with caption=_("By day") %}{# a comment #}'
        '<input type="hidden" name="action" value="send"><button value="up">👍</button>'
    )
    assert unmarked(marked) == []


def test_every_template_string_is_marked_for_translation():
    assert unmarked_in(ROOT / "templates") == {}


def test_script_strings_are_in_a_form_makemessages_extracts(tmp_path):
    (tmp_path / "a.js").write_text('x = (window.gettext || ((s) => s))("Queued");\n_("Seen");')
    assert i18n.hidden_js_strings(tmp_path) == ["a.js: 'Queued'"]
    assert i18n.hidden_js_strings(ROOT / "static" / "js") == []


# The catalogs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CATALOGS, ids=lambda path: path.name)
def test_the_chinese_catalog_has_no_empty_or_fuzzy_entry(path):
    assert path.exists(), "run `make makemessages`"
    assert i18n.problems(path) == []
    assert len(polib.pofile(str(path))) > 10


def _translations(catalog: polib._BaseFile) -> dict:
    return {
        (entry.msgctxt, entry.msgid): (entry.msgstr, sorted(entry.msgstr_plural.items()))
        for entry in catalog
        if not getattr(entry, "fuzzy", False)
        and (entry.msgstr or any(entry.msgstr_plural.values()))
    }


@pytest.mark.parametrize("path", CATALOGS, ids=lambda path: path.name)
def test_the_compiled_catalog_says_what_the_source_says(path):
    compiled = path.with_suffix(".mo")
    assert compiled.exists(), "run `make messages`"
    assert _translations(polib.mofile(compiled)) == _translations(polib.pofile(path)), (
        "run `make messages`"
    )


def test_makemessages_would_add_nothing(tmp_path, settings):
    """Run makemessages on a copy of the project: any msgid it finds that the catalogs lack is
    a string marked but not translated."""
    assert shutil.which("xgettext"), "makemessages needs GNU gettext (`make gettext`)"
    for name in ("chat", "project", "templates", "static", "locale"):
        shutil.copytree(
            ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "vendor")
        )
    with override_settings(LOCALE_PATHS=[tmp_path / "locale"]):
        i18n.extract(tmp_path)
    for domain in i18n.DOMAINS:
        extracted = {entry.msgid for entry in polib.pofile(i18n.catalog_path(domain, tmp_path))}
        shipped = {entry.msgid for entry in polib.pofile(i18n.catalog_path(domain))}
        assert extracted - shipped == set(), f"{domain}: run `make makemessages`, then translate"


def test_fill_writes_pending_translations_and_reports_the_rest(tmp_path):
    catalog = i18n.catalog_path("django", tmp_path)
    catalog.parent.mkdir(parents=True)
    catalog.write_text(
        '#, fuzzy\nmsgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "Hello %(name)s"\nmsgstr ""\n\n'
        '#, fuzzy\nmsgid "Two"\nmsgstr "旧的"\n\n'
        'msgid "%(n)s chat"\nmsgid_plural "%(n)s chats"\nmsgstr[0] ""\nmsgstr[1] ""\n\n'
        'msgid "Untouched"\nmsgstr ""\n',
        encoding="utf-8",
    )
    pending = {"Hello %(name)s": "你好 %(name)s", "Two": "二", "%(n)s chat": "%(n)s 个对话"}
    left = i18n.fill(pending, tmp_path)
    assert left == ["django.po: untranslated: 'Untouched'"]
    entries = {entry.msgid: entry for entry in polib.pofile(str(catalog))}
    assert entries["Hello %(name)s"].msgstr == "你好 %(name)s"
    assert entries["Two"].msgstr == "二" and not entries["Two"].fuzzy
    assert entries["%(n)s chat"].msgstr_plural == {0: "%(n)s 个对话"}  # Chinese: one form
    assert "Language: zh_Hans" in catalog.read_text(encoding="utf-8")


def test_a_lost_placeholder_is_a_problem(tmp_path):
    catalog = tmp_path / "django.po"
    catalog.write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "Hello %(name)s"\nmsgstr "你好"\n',
        encoding="utf-8",
    )
    assert i18n.problems(catalog) == ["django.po: placeholders differ: 'Hello %(name)s'"]


# The language of a page -------------------------------------------------------------------------


def test_without_accept_language_pages_are_english(logged_in_client):
    response = logged_in_client.get("/")
    assert html_lang(response) == "en"
    assert "New chat" in response.content.decode()


def test_the_browser_language_picks_chinese(logged_in_client):
    response = logged_in_client.get("/", **CHINESE)
    page = response.content.decode()
    assert html_lang(response) == "zh-hans"
    assert "新对话" in page and "New chat" not in page
    assert "消息（Enter 发送，Shift+Enter 换行）" in page
    assert 'href="/accounts/password_change/">修改密码</a>' in page


thread = test_csp.thread  # a staff member's chat with a finished answer (a fixture)


@pytest.mark.parametrize("url", test_csp.PAGES)
def test_every_page_renders_in_chinese(staff_client, thread, url):
    """Every page of test_csp.PAGES (a template error in a rarely drawn translation would be a
    500 here), with Chinese in it, in a page that says so."""
    SiteSettings.load()
    response = staff_client.get(
        url.format(thread=thread.pk, turn=thread.current_turn_id), **CHINESE
    )
    assert response.status_code == 200, url
    body = response.content.decode()
    assert re.search(r"[\u4e00-\u9fff]", body) or not body.strip(), url  # (no earlier turns)
    if "<html" in body:
        assert html_lang(response) == "zh-hans", url


def test_the_login_page_and_django_forms_follow_the_browser(client, user):
    response = client.get("/accounts/login/", **CHINESE)
    page = response.content.decode()
    assert html_lang(response) == "zh-hans"
    assert "<h2>登录</h2>" in page
    assert "用户名" in page  # Django's own form label, from Django's catalog
    refused = client.post("/accounts/login/", {"username": "alice", "password": "wrong"}, **CHINESE)
    assert "请输入一个正确的" in refused.content.decode()  # Django's own error message


def test_the_admin_follows_the_browser(staff_client):
    response = staff_client.get("/admin/", **CHINESE)
    assert html_lang(response) == "zh-hans"
    assert "最近动作" in response.content.decode()


def test_dates_and_numbers_follow_the_language():
    template = Template('{% load i18n %}{{ when|date:_("j M Y, H:i") }} · {{ n|floatformat:"0g" }}')
    context = {"when": dt.datetime(2026, 12, 1, 15, 30), "n": 12345}
    with translation.override("zh-hans"):
        assert template.render(Context(context)) == "2026年12月1日 15:30 · 12,345"
    with translation.override("en"):
        assert template.render(Context(context)) == "1 Dec 2026, 15:30 · 12,345"


# The switch -------------------------------------------------------------------------------------


def test_the_user_menu_offers_the_switch(logged_in_client):
    page = logged_in_client.get("/").content.decode()
    switch = re.search(r'<form class="language-switch".*?</form>', page, re.S)[0]
    assert 'action="/i18n/setlang/"' in switch
    assert '<option value="zh-hans" lang="zh-hans">简体中文</option>' in switch
    assert '<option value="en" selected lang="en">English</option>' in switch


def test_the_switch_changes_the_language_and_is_remembered(logged_in_client, settings):
    response = logged_in_client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/tools/"})
    assert response.status_code == 302 and response["Location"] == "/tools/"
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "zh-hans" and int(cookie["max-age"]) >= 300 * 24 * 3600
    # Later pages, without any Accept-Language, are Chinese; the cookie wins over the browser.
    assert "你的工具" in logged_in_client.get("/tools/").content.decode()
    assert html_lang(logged_in_client.get("/", HTTP_ACCEPT_LANGUAGE="en")) == "zh-hans"
    logged_in_client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert "Your tools" in logged_in_client.get("/tools/", **CHINESE).content.decode()


def test_the_switch_works_before_logging_in_and_refuses_other_sites(client, user):
    response = client.post(
        "/i18n/setlang/", {"language": "zh-hans", "next": "https://evil.example/"}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert "<h2>登录</h2>" in client.get("/accounts/login/").content.decode()


def test_an_unknown_language_changes_nothing(logged_in_client):
    logged_in_client.post("/i18n/setlang/", {"language": "xx", "next": "/"})
    assert html_lang(logged_in_client.get("/")) == "en"


# The JavaScript catalog -------------------------------------------------------------------------


def test_the_javascript_catalog_is_a_script_of_this_site_in_the_pages_language(client, user):
    response = client.get("/jsi18n/", **CHINESE)  # before logging in too (the login page)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    body = response.content.decode()
    assert '"Copied": "\\u5df2\\u590d\\u5236"' in body  # 已复制
    assert "已复制" not in client.get("/jsi18n/").content.decode()


def test_pages_load_the_catalog_before_their_scripts(logged_in_client):
    page = logged_in_client.get("/").content.decode()
    assert page.index('<script src="/jsi18n/" defer>') < page.index("/static/js/app.")


def test_the_catalog_loads_on_the_first_run_setup_page(client, settings, db):
    settings.MIDDLEWARE = list(settings.MIDDLEWARE)  # FirstRunMiddleware forgets accounts exist
    assert client.get("/jsi18n/").status_code == 200
    assert client.get("/").status_code == 302  # everything else still leads to the setup


# What arrives over the websocket ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("header", "regenerate", "viewing"),
    [
        ((b"cookie", b"django_language=zh-hans"), "重新生成", "正在查看："),
        ((b"accept-language", b"zh-CN,zh;q=0.9"), "重新生成", "正在查看："),
        ((b"accept-language", b"en-GB"), "Regenerate", "Viewing:"),
    ],
)
async def test_live_fragments_are_in_the_language_of_the_page(
    make_thread, user, cookie_of, header, regenerate, viewing
):
    thread = await sync_to_async(make_thread)(user)
    name, session = await cookie_of(user)
    headers = (
        [(name, session + b"; " + header[1])]
        if header[0] == b"cookie"
        else [(name, session), header]
    )
    ws = socket(thread.pk, ORIGIN, *headers)
    assert (await ws.connect())[0]
    assert viewing in await ws.receive_presence()
    await ws.send_to(json.dumps({"message": "Hello"}))
    turn_id = None
    while turn_id is None:
        turn_id = await Turn.objects.filter(thread=thread).values_list("pk", flat=True).afirst()
    received = await receive_until(ws, finished(turn_id))
    assert regenerate in received[-1]
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_viewer_in_another_language_gets_the_turn_in_theirs(make_thread, user, cookie_of):
    """The turn's end is rendered once in the sender's language; an English page watching a
    Chinese sender renders it in English."""
    thread = await sync_to_async(make_thread)(user)
    name, session = await cookie_of(user)
    chinese = socket(thread.pk, ORIGIN, (name, session + b"; django_language=zh-hans"))
    english = socket(thread.pk, ORIGIN, (name, session))
    assert (await chinese.connect())[0] and (await english.connect())[0]
    await chinese.send_to(json.dumps({"message": "Hello"}))
    turn_id = None
    while turn_id is None:
        turn_id = await Turn.objects.filter(thread=thread).values_list("pk", flat=True).afirst()
    assert "重新生成" in (await receive_until(chinese, finished(turn_id)))[-1]
    seen_in_english = await receive_until(english, finished(turn_id))
    assert "Regenerate" in seen_in_english[-1] and "重新生成" not in "".join(seen_in_english)
    await chinese.disconnect()
    await english.disconnect()


@pytest.mark.browser
def test_switching_to_chinese_in_the_browser(live_app, browser_page: Page, tmp_path):
    from tests.live_server import ARTIFACTS
    from tests.support.browser import PASSWORD

    seed_data_dir(tmp_path, users=[{"username": "li", "email": "", "password": PASSWORD}])
    page = browser_page
    log_in(page, live_app, "li")
    page.get_by_label("Message", exact=True).fill("你好")
    page.get_by_label("Message", exact=True).press("Enter")
    page.wait_for_url("**/t/*/")
    chat_url = page.url
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)
    expect(page.locator(".copy-code").first).to_have_text("Copy")

    page.get_by_label("Language").select_option(label="简体中文")
    page.get_by_role("button", name="Switch").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_role("link", name="新对话")).to_be_visible()
    # Strings made by app.js come from the JavaScript catalog.
    code_copy = page.locator(".copy-code").first
    expect(code_copy).to_have_text("复制")
    expect(code_copy).to_have_attribute("aria-label", "复制代码")
    page.screenshot(path=ARTIFACTS / "i18n-chinese-chat.png", full_page=True)

    page.reload()  # remembered
    expect(page.get_by_role("button", name="发送")).to_be_visible()
    # …past logging out: the login page, Django's own form labels included, stays Chinese.
    page.get_by_role("button", name="退出登录").click()
    expect(page.get_by_role("heading", name="登录")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "i18n-chinese-login.png")
    page.get_by_label("用户名").fill("li")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("link", name="新对话")).to_be_visible()
    page.get_by_label("语言").select_option(label="English")
    page.get_by_role("button", name="切换").click()
    expect(page.get_by_role("link", name="New chat")).to_be_visible()
    page.goto(chat_url)
    expect(page.locator(".copy-code").first).to_have_text("Copy")
