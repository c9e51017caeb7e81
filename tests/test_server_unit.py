"""Server pieces on their own: option parsing, the limiter, and the app with an injected session."""

from __future__ import annotations

import asyncio
import io
import sys
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from bgclear import InputError
from bgclear.server import ServerSettings, create_app
from bgclear.server.errors import APIError
from bgclear.server.limiter import Limiter
from bgclear.server.schemas import parse_options

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import disc_image  # noqa: E402


def test_defaults_are_a_full_resolution_png() -> None:
    opts, notes = parse_options({}, {})
    assert (opts.image_format, opts.size, opts.channels, opts.bg_color, opts.crop, opts.shadow) == (
        "png", "full", "rgba", None, False, False)
    assert notes == []


def test_form_fields_override_the_query_and_aliases_apply() -> None:
    opts, notes = parse_options({"format": "png", "add_shadow": "false"}, {"format": "JPEG", "add_shadow": "1", "x": "y"})
    assert opts.image_format == "jpg" and opts.shadow is True
    assert notes == ["ignored the unknown option 'x'"]


@pytest.mark.parametrize("bg,expected", [(None, "png"), ("#ffffff", "jpg")])
def test_auto_format_is_png_unless_a_background_is_set(bg: str | None, expected: str) -> None:
    opts, _ = parse_options({"format": "auto", **({"bg_color": bg} if bg else {})}, {})
    assert opts.image_format == expected


@pytest.mark.parametrize("value", ["transparent", "", "none"])
def test_transparent_background_means_none(value: str) -> None:
    assert parse_options({"bg_color": value}, {})[0].bg_color is None


def test_options_that_do_not_apply_to_the_matte_are_noted() -> None:
    _, notes = parse_options({"channels": "alpha", "bg_color": "red", "shadow": "true"}, {})
    assert notes == ["bg_color and shadow ignored: channels=alpha returns the matte alone"]


def test_every_problem_is_named_in_one_message() -> None:
    with pytest.raises(InputError) as err:
        parse_options({"format": "bmp", "quality": "500"}, {})
    assert err.value.code == "invalid_option"
    assert "format" in err.value.message and "quality" in err.value.message


def test_limiter_refuses_beyond_capacity_with_a_retry_estimate() -> None:
    async def scenario() -> tuple[int, APIError]:
        limiter = Limiter(max_concurrency=1, queue_size=1)
        gate = asyncio.Event()
        blocker = threading.Event()

        async def hold() -> None:
            async with limiter.admission():
                await limiter.run(blocker.wait)
                await gate.wait()

        tasks = [asyncio.create_task(hold()) for _ in range(2)]
        while limiter.admitted < 2:
            await asyncio.sleep(0)
        with pytest.raises(APIError) as refused:
            async with limiter.admission():
                pass
        admitted = limiter.admitted
        blocker.set()
        gate.set()
        await asyncio.gather(*tasks)
        limiter.shutdown()
        return admitted, refused.value

    admitted, error = asyncio.run(scenario())
    assert admitted == 2
    assert error.code == "busy" and error.status == 503
    assert int(error.headers["Retry-After"]) >= 1


def test_app_with_an_injected_session(small_session) -> None:
    app = create_app(ServerSettings(segmenter="u2netp", max_concurrency=1), session=small_session)
    with TestClient(app) as client:
        assert client.get("/healthz").json()["status"] == "ready"
        r = client.post("/v1/remove", params={"channels": "alpha", "size": "preview"},
                        files={"image_file": ("x.png", disc_image(1200, 900))})
        assert r.status_code == 200, r.text
        matte = Image.open(io.BytesIO(r.content))
        assert matte.mode == "L" and matte.size == (1000, 750)


def test_serve_command_plugs_into_a_click_group() -> None:
    import click
    from click.testing import CliRunner

    from bgclear.server import serve_command

    @click.group()
    def cli() -> None:
        pass

    cli.add_command(serve_command)
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--segmenter", "--max-concurrency", "--queue-size", "--max-bytes", "--max-pixels"):
        assert option in result.output
