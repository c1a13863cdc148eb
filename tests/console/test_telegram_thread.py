"""What a Telegram customer sent, as an agent sees it in the thread (Chromium): the updates go
through the real webhook, their files through a fake Bot API, into the console of a real app."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import delete, select

from gateway.appkeys import PIPELINE
from gateway.models import AgentRole
from gateway.store.tables import ContactIdentity, Ticket
from tests.api.conftest import add_agent
from tests.channels.telegram.conftest import (
    TOKEN,
    WEBHOOK,
    WEBHOOK_SECRET,
    load_fixture,
)
from tests.channels.telegram.conftest import fake as fake  # the fake Bot API, on loopback
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.console.conftest import ConsoleApp, Dialogs, StartConsole, console_login, needs_chromium
from tests.console.media_bytes import STICKER_SIDE, mp4_h264, ogg_opus, sticker_webm, sticker_webp

LOADED_WIDTH = "img => img.decode().then(() => img.naturalWidth)"
"""An image's width in pixels once its bytes came and decoded (fails if they cannot)."""
IMG = '<img src=x onerror="alert(1);window.__xss=1">'
# What the page renders does not depend on the database.
pytestmark = [needs_chromium, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


def osm(latitude: str, longitude: str) -> str:
    """OpenStreetMap's page of a point, as the Telegram channel writes it (parse.py)."""
    point = f"mlat={latitude}&mlon={longitude}#map=17/{latitude}/{longitude}"
    return f"https://www.openstreetmap.org/?{point}"


def png(width: int, height: int) -> bytes:
    """A red PNG of this size: a photo's bytes (browsers tell an image's format by its bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def telegram_console(
    start_console: StartConsole, fake: FakeBotAPI, tmp_path: Path
) -> ConsoleApp:
    """The app with Telegram on (webhook, files from ``fake``) and Li, an online agent."""
    console_app = await start_console(
        telegram={
            "enabled": True,
            "token": TOKEN,
            "webhook_secret": WEBHOOK_SECRET,
            "base_url": f"http://127.0.0.1:{fake.port}",
            "attachment_dir": str(tmp_path / "attachments"),
        }
    )
    await add_agent(console_app.store, "li@shop.test", AgentRole.AGENT)
    return console_app


async def post(console_app: ConsoleApp, *updates: dict[str, Any]) -> None:
    """Telegram delivers ``updates`` to the webhook, one after the other."""
    async with aiohttp.ClientSession() as http:
        for update in updates:
            async with http.post(
                console_app.base + WEBHOOK,
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
            ) as response:
                assert response.status == 200, await response.text()
    await console_app.app[PIPELINE].drain()


async def open_first_ticket(console_app: ConsoleApp, browser: Browser) -> Page:
    """Li's console (English), the one ticket open."""
    page = await browser.new_page(locale="en-US", viewport={"width": 1280, "height": 900})
    Dialogs().watch(page)
    await console_login(page, console_app.base, "li@shop.test")
    await page.locator("#queue-list .ticket-row").first.click(timeout=10_000)
    await expect(page.locator("#ticket-view")).to_be_visible()
    return page


async def test_a_photo_shows_in_the_thread_with_its_caption(
    start_console: StartConsole, fake: FakeBotAPI, browser: Browser, tmp_path: Path
) -> None:
    """Before, a photo was a link named ``photo_pb.jpg`` that downloaded it: to see what the
    customer showed ("the casing came broken") the agent saved it and opened it elsewhere."""
    console_app = await telegram_console(start_console, fake, tmp_path)
    fake.add_file("photo-big", png(3, 2), "photos/file_1.jpg")
    await post(console_app, load_fixture("photo_with_caption"))
    page = await open_first_ticket(console_app, browser)

    message = page.locator("#thread .msg-customer")
    await expect(message.locator(".msg-text")).to_have_text("收到的商品外壳破了")
    photo = message.locator("img.msg-photo")
    await expect(photo).to_have_count(1)
    await expect(photo).to_have_attribute("alt", "photo_pb.jpg")
    # Loaded through the download route with the agent's session: the picture itself.
    assert await photo.evaluate(LOADED_WIDTH) == 3
    # The file stays downloadable by name, with its size.
    await expect(message.locator(".attachment a")).to_have_text("photo_pb.jpg")
    await expect(message.locator(".attachment")).to_contain_text("(1 KB)")
    # A click shows it larger, another smaller again.
    await photo.click()
    await expect(photo).to_have_class("msg-photo msg-photo-large")
    await photo.click()
    await expect(photo).to_have_class("msg-photo")


async def test_only_plain_images_show_and_their_names_stay_text(
    start_console: StartConsole, fake: FakeBotAPI, browser: Browser, tmp_path: Path
) -> None:
    """A document the customer names and types: an image (PNG) shows, its hostile name only as
    text and ``alt``; an SVG (it can carry script) and a PDF stay links."""
    console_app = await telegram_console(start_console, fake, tmp_path)
    documents = (
        ("doc-png", f"{IMG}.png", "image/png", png(4, 4)),
        ("doc-svg", "drawing.svg", "image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
        ("doc-pdf", "invoice.pdf", "application/pdf", b"%PDF-1.4\n"),
    )
    updates = []
    for n, (file_id, name, media_type, data) in enumerate(documents):
        fake.add_file(file_id, data, f"documents/{file_id}")
        update = load_fixture("document")
        update["update_id"] += n
        update["message"]["message_id"] += n
        update["message"]["document"] = {
            "file_id": file_id,
            "file_unique_id": file_id,
            "file_name": name,
            "mime_type": media_type,
            "file_size": len(data),
        }
        updates.append(update)
    await post(console_app, *updates)
    dialogs = Dialogs()
    page = await open_first_ticket(console_app, browser)
    dialogs.watch(page)

    messages = page.locator("#thread .msg-customer")
    await expect(messages).to_have_count(3)
    photo = page.locator("#thread img.msg-photo")
    await expect(photo).to_have_count(1)  # the PNG only
    await expect(photo).to_have_attribute("alt", f"{IMG}.png")
    assert await photo.evaluate(LOADED_WIDTH) == 4
    await expect(messages.nth(0).locator(".attachment a")).to_have_text(f"{IMG}.png")
    await expect(messages.nth(1).locator(".attachment a")).to_have_text("drawing.svg")
    await expect(messages.nth(2).locator(".attachment a")).to_have_text("invoice.pdf")
    await page.wait_for_timeout(300)
    assert dialogs.seen == []
    assert await page.evaluate("window.__xss === undefined")
    assert await page.locator("img").count() == 1
    assert await page.locator("svg, iframe, object, embed").count() == 0


async def test_a_shared_location_is_a_map_link(
    start_console: StartConsole, fake: FakeBotAPI, browser: Browser, tmp_path: Path
) -> None:
    """Before, a location was its place and an OpenStreetMap address as plain text: the agent
    copied the address into a browser to see where the customer was. The link is made from the
    coordinates alone; a venue's name (the customer's client sends it) stays text."""
    console_app = await telegram_console(start_console, fake, tmp_path)
    venue = load_fixture("venue")
    venue["message"]["venue"]["title"] = f"javascript:alert(1) {IMG}"
    await post(console_app, load_fixture("location"), venue)
    dialogs = Dialogs()
    page = await open_first_ticket(console_app, browser)
    dialogs.watch(page)

    messages = page.locator("#thread .msg-customer")
    await expect(messages).to_have_count(2)
    point = messages.nth(0)
    await expect(point.locator(".msg-text")).to_have_text("📍 31.230416, 121.473701")
    link = point.locator("a.msg-map")
    await expect(link).to_have_text("Open map")
    await expect(link).to_have_attribute("href", osm("31.230416", "121.473701"))
    await expect(link).to_have_attribute("target", "_blank")
    await expect(link).to_have_attribute("rel", "noopener noreferrer")

    place = messages.nth(1)
    await expect(place.locator(".msg-text")).to_have_text(
        f"📍 javascript:alert(1) {IMG}, 1 Century Avenue, Pudong"
    )
    await expect(place.locator("a.msg-map")).to_have_attribute(
        "href", osm("31.239692", "121.499755")
    )
    assert await page.locator("#thread a[href^='javascript']").count() == 0
    await page.wait_for_timeout(300)
    assert dialogs.seen == []
    assert await page.evaluate("window.__xss === undefined")
    assert await page.locator("img, svg, iframe").count() == 0


async def test_a_customer_blocking_the_bot_shows_at_once_with_where_notices_go(
    start_console: StartConsole, fake: FakeBotAPI, browser: Browser, tmp_path: Path
) -> None:
    """Before, a block (Telegram's ``my_chat_member``) marked the identity unreachable and
    moved no ticket: an agent with the ticket open saw "Telegram" until something else
    changed it, then "Telegram (unreachable)", nothing saying the customer's notices and
    surveys would now go to the address they had written from."""
    console_app = await telegram_console(start_console, fake, tmp_path)
    fake.add_file("photo-big", png(3, 2), "photos/file_1.jpg")
    await post(console_app, load_fixture("photo_with_caption"))
    async with console_app.store.write() as session:
        contact_id = await session.scalar(select(Ticket.contact_id))
        assert contact_id is not None
        # 小李 wrote from this address too (a verified email joins the same contact).
        session.add(
            ContactIdentity(contact_id=contact_id, channel="email", external_user_id="li@ex.com")
        )
    page = await open_first_ticket(console_app, browser)
    await expect(page.locator("#profile-channels")).to_have_text("Email, Telegram")

    await post(console_app, load_fixture("bot_blocked"))
    await expect(page.locator("#profile-channels")).to_have_text(
        "Email, Telegram (unreachable; notices by email)", timeout=10_000
    )
    async with console_app.store.write() as session:
        await session.execute(delete(ContactIdentity).where(ContactIdentity.channel == "email"))
    await page.reload()
    await expect(page.locator("#profile-channels")).to_have_text("Telegram (unreachable)")


async def test_an_albums_photos_show_together_with_its_caption(
    start_console: StartConsole, fake: FakeBotAPI, browser: Browser, tmp_path: Path
) -> None:
    """Telegram sends an album as a message a photo, the caption on one of them. Before, the
    thread showed each as a message of its own, the caption beside one photo and the others
    alone, where Telegram shows the customer one message."""
    console_app = await telegram_console(start_console, fake, tmp_path)
    updates = [load_fixture("location")]  # opens the ticket (it goes to people at once)
    for n, caption in enumerate((None, f"two broken parts {IMG}")):
        fake.add_file(f"album-{n}", png(5 + n, 5), f"photos/album_{n}.jpg")
        update = load_fixture("photo_with_caption")
        message = update["message"]
        update["update_id"] = 2000 + n
        message.update(
            message_id=40 + n,
            chat=load_fixture("location")["message"]["chat"],
            media_group_id="13579",
            photo=[{"file_id": f"album-{n}", "file_unique_id": f"a{n}", "width": 5, "height": 5}],
        )
        message["from"] = load_fixture("location")["message"]["from"]
        message.pop("caption")
        if caption:
            message["caption"] = caption  # on the second photo: Telegram may put it on any
        updates.append(update)
    later = load_fixture("location")
    later["update_id"], later["message"]["message_id"] = 2010, 50
    updates.append(later)
    await post(console_app, *updates)
    dialogs = Dialogs()
    page = await open_first_ticket(console_app, browser)
    dialogs.watch(page)

    messages = page.locator("#thread .msg-customer")
    await expect(messages).to_have_count(3)  # the location, the album, the location again
    album = messages.nth(1)
    await expect(album.locator(".msg-text")).to_have_text(f"two broken parts {IMG}")
    photos = album.locator("img.msg-photo")
    await expect(photos).to_have_count(2)
    assert [await photos.nth(i).evaluate(LOADED_WIDTH) for i in range(2)] == [5, 6]
    await expect(album.locator(".attachment a")).to_have_text(["photo_a0.jpg", "photo_a1.jpg"])
    await page.wait_for_timeout(300)
    assert dialogs.seen == []
    assert await page.evaluate("window.__xss === undefined")
    assert await page.locator("img").count() == 2


METADATA = """media => new Promise((resolve, reject) => {
  const failed = () => reject(new Error("media error " + (media.error ? media.error.code : "?")));
  if (media.readyState >= 1) return resolve(media.readyState);
  if (media.error) return failed();
  media.addEventListener("loadedmetadata", () => resolve(media.readyState));
  media.addEventListener("error", failed);
  setTimeout(() => reject(new Error("no metadata: readyState " + media.readyState)), 10000);
})"""
"""A player's readyState once it has read its file's length (fails if it could not, or not
within 10 s: a load the page's CSP blocks may never say so)."""
RANGE = """media => fetch(media.src, {headers: {Range: "bytes=0-15"}}).then(r => [r.status,
  r.headers.get("content-type"), r.headers.get("content-range"), r.headers.get("accept-ranges")])"""
"""What the download route answers a player's first Range request for the file."""


async def test_a_voice_note_and_a_video_play_in_the_thread(
    start_console: StartConsole, fake: FakeBotAPI, browser: Browser, tmp_path: Path
) -> None:
    """Before, a voice note was a link named ``voice_v1.ogg`` and a video ``broken-hinge.mp4``:
    to hear what the customer said the agent downloaded it and played it elsewhere. Now each
    plays in the thread (the console's CSP let no media load: it had no ``media-src``)."""
    console_app = await telegram_console(start_console, fake, tmp_path)
    voice_bytes, video_bytes = ogg_opus(), mp4_h264()
    fake.add_file("voice-1", voice_bytes, "voice/file_1.oga")
    fake.add_file("video-1", video_bytes, "videos/file_2.mp4")
    fake.add_file("voice-amr", b"#!AMR\n" + bytes(32), "voice/file_3.amr")
    video = load_fixture("video_with_caption")
    video["message"]["video"]["file_name"] = f"{IMG}.mp4"
    amr = load_fixture("voice")  # a type no browser plays: a link only
    amr["update_id"], amr["message"]["message_id"] = 1100, 100
    amr["message"]["voice"].update(file_id="voice-amr", file_unique_id="v9", mime_type="audio/amr")
    await post(console_app, load_fixture("voice"), video, amr)
    dialogs = Dialogs()
    page = await open_first_ticket(console_app, browser)
    dialogs.watch(page)

    messages = page.locator("#thread .msg-customer")
    await expect(messages).to_have_count(3)
    voice = messages.nth(0).locator("audio.msg-media")
    await expect(voice).to_have_count(1)
    link = messages.nth(0).locator(".attachment a")
    await expect(link).to_have_text("voice_v1.ogg")  # still downloadable beside the player
    await expect(voice).to_have_attribute("src", await link.get_attribute("href") or "")
    await expect(voice).to_have_attribute("controls", "")
    await expect(voice).to_have_attribute("preload", "metadata")
    assert await voice.evaluate(METADATA) >= 1
    assert await voice.evaluate("a => Math.round(a.duration)") == 1  # the real file's length
    voice_range = f"bytes 0-15/{len(voice_bytes)}"
    assert await voice.evaluate(RANGE) == [206, "audio/ogg", voice_range, "bytes"]

    clip = messages.nth(1).locator("video.msg-media")
    await expect(clip).to_have_count(1)
    await expect(messages.nth(1).locator(".msg-text")).to_have_text("The hinge broke on day two")
    await expect(clip).to_have_attribute("title", f"{IMG}.mp4")  # the name as a value only
    await expect(messages.nth(1).locator(".attachment a")).to_have_text(f"{IMG}.mp4")
    assert await clip.evaluate(METADATA) >= 1
    assert await clip.evaluate("v => v.videoWidth") == 16
    video_range = f"bytes 0-15/{len(video_bytes)}"
    assert await clip.evaluate(RANGE) == [206, "video/mp4", video_range, "bytes"]

    await expect(messages.nth(2).locator(".attachment a")).to_have_text("voice_v9.ogg")
    await expect(messages.nth(2).locator("audio, video")).to_have_count(0)
    await page.wait_for_timeout(300)
    assert dialogs.seen == []
    assert await page.evaluate("window.__xss === undefined")
    assert await page.locator("img").count() == 0


async def test_the_profile_shows_the_customers_telegram_username(
    start_console: StartConsole, fake: FakeBotAPI, browser: Browser, tmp_path: Path
) -> None:
    """Before, the profile said "Telegram" and nothing else: Telegram gives the sender's
    @username with each message, and an agent who had to find the person in Telegram (to call
    them there, to tell two 小李 apart) could not. The latest name they wrote with shows (none
    once they removed it), a link to their t.me page only when it is a username by Telegram's
    rule."""
    console_app = await telegram_console(start_console, fake, tmp_path)
    fake.add_file("photo-big", png(3, 2), "photos/file_1.jpg")

    def said(n: int, username: str | None) -> dict[str, Any]:
        update = load_fixture("private_text")
        update["update_id"], update["message"]["message_id"] = 1100 + n, 100 + n
        if username is not None:
            update["message"]["from"]["username"] = username
        return update

    photo = load_fixture("photo_with_caption")
    photo["message"]["from"]["username"] = "xiao_li_old"
    await post(console_app, photo, said(1, "li_xiao"))  # the name changed since the photo
    dialogs = Dialogs()
    page = await open_first_ticket(console_app, browser)
    dialogs.watch(page)

    channels = page.locator("#profile-channels")
    await expect(channels).to_have_text("Telegram (@li_xiao)")
    link = channels.locator("a.profile-handle")
    await expect(link).to_have_text("@li_xiao")
    await expect(link).to_have_attribute("href", "https://t.me/li_xiao")
    await expect(link).to_have_attribute("target", "_blank")
    await expect(link).to_have_attribute("rel", "noopener noreferrer")

    await post(console_app, load_fixture("bot_blocked"))
    await expect(channels).to_have_text("Telegram (@li_xiao; unreachable)", timeout=10_000)

    # Not a Telegram username (a client's bug, a forged update): text, and no link made of it.
    await post(console_app, said(3, f"javascript:alert(1) {IMG}"))
    await expect(channels).to_contain_text(f"Telegram (@javascript:alert(1) {IMG}", timeout=10_000)
    await expect(link).to_have_count(0)
    await page.wait_for_timeout(300)
    assert dialogs.seen == []
    assert await page.evaluate("window.__xss === undefined")
    assert await page.locator("#profile img, #profile a[href^='javascript']").count() == 0

    # They removed their username: their latest message says so, and no bare "@" is left.
    await post(console_app, said(4, None))
    await expect(channels).to_have_text("Telegram", timeout=10_000)


async def test_a_ticket_older_than_the_username_shows_it_too(
    start_console: StartConsole, fake: FakeBotAPI, browser: Browser, tmp_path: Path
) -> None:
    """The profile read the @username from the messages of the ticket on screen, so a ticket
    the customer wrote before they had one (or on another channel) showed none, though their
    newer ticket carried it. The name comes with the contact now."""
    console_app = await telegram_console(start_console, fake, tmp_path)
    first = load_fixture("private_text")  # no username then
    again = load_fixture("private_text")
    again["update_id"], again["message"]["message_id"] = 1101, 101
    again["message"]["from"]["username"] = "li_xiao"
    again["message"]["text"] = "/new the charger is broken too"
    again["message"]["entities"] = [{"offset": 0, "length": 4, "type": "bot_command"}]
    await post(console_app, first, again)
    async with console_app.store.read() as session:
        older, newer = (await session.scalars(select(Ticket.number).order_by(Ticket.id))).all()
    page = await open_first_ticket(console_app, browser)
    await page.locator("#queue-list .ticket-row", has_text=older).click()
    await expect(page.locator("#ticket-view")).to_have_attribute("data-number", older)
    channels = page.locator("#profile-channels")
    await expect(channels).to_have_text("Telegram (@li_xiao)")
    await expect(channels.locator("a.profile-handle")).to_have_attribute(
        "href", "https://t.me/li_xiao"
    )
    await page.locator("#queue-list .ticket-row", has_text=newer).click()
    await expect(page.locator("#ticket-view")).to_have_attribute("data-number", newer)
    await expect(channels).to_have_text("Telegram (@li_xiao)")


PLAYS = """video => new Promise((resolve, reject) => {
  let last = 0, moved = false;
  video.addEventListener("timeupdate", () => {
    if (video.currentTime > last) moved = true;
    else if (moved && video.currentTime < last) resolve("looped");
    last = video.currentTime;
  });
  setTimeout(() => reject(new Error("at " + video.currentTime + ", paused " + video.paused)), 8000);
})"""
"""Resolves once a video played on and started over."""


async def test_a_video_sticker_plays_by_itself_like_in_telegram(
    start_console: StartConsole, fake: FakeBotAPI, browser: Browser, tmp_path: Path
) -> None:
    """A video sticker (WebM) showed as a video player with controls, a black box with a play
    button where Telegram shows a small moving picture. It plays by itself now, muted, looping,
    without controls, as large as a still sticker; an animated .tgs one (Lottie, which only
    Telegram's apps play) stays a link."""
    console_app = await telegram_console(start_console, fake, tmp_path)
    fake.add_file("sticker-1", await sticker_webp(browser), "stickers/file_4.webp")
    fake.add_file("sticker-2", await sticker_webm(browser), "stickers/file_5.webm")
    fake.add_file("sticker-3", b"\x1f\x8b\x08" + bytes(29), "stickers/file_6.tgs")
    animated = load_fixture("sticker")
    animated["update_id"], animated["message"]["message_id"] = 1100, 100
    animated["message"]["sticker"].update(
        is_animated=True, file_id="sticker-3", file_unique_id="st3"
    )
    await post(console_app, load_fixture("sticker"), load_fixture("video_sticker"), animated)
    page = await open_first_ticket(console_app, browser)

    messages = page.locator("#thread .msg-customer")
    await expect(messages).to_have_count(3)
    still = messages.nth(0).locator("img.msg-photo")
    assert await still.evaluate(LOADED_WIDTH) == STICKER_SIDE
    sticker = messages.nth(1).locator("video.msg-sticker")
    await expect(sticker).to_have_count(1)
    await expect(messages.nth(1).locator(".msg-text")).to_have_text("🎉")
    how = "v => [v.controls, v.muted, v.loop, v.autoplay, v.hasAttribute('playsinline')]"
    assert await sticker.evaluate(how) == [False, True, True, True, True]
    assert await sticker.evaluate(PLAYS) == "looped"  # by itself: nobody pressed play
    size = "e => [e.getBoundingClientRect().width, e.getBoundingClientRect().height]"
    assert await sticker.evaluate(size) == await still.evaluate(size) == [180, 180]
    await expect(messages.nth(1).locator(".attachment a")).to_have_text("sticker_st2.webm")

    await expect(messages.nth(2).locator(".attachment a")).to_have_text("sticker_st3.tgs")
    await expect(messages.nth(2).locator("img, video")).to_have_count(0)
