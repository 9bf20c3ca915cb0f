"""The switch between skipping and failing PostgreSQL tests when no server answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pg import NOT_TESTED, REQUIRE_PG_ENV, connect_admin, give_up, pg_required

UNREACHABLE = "postgresql+asyncpg://postgres@127.0.0.1:9/test"  # discard port: refused


@pytest.mark.parametrize(
    ("environ", "required"),
    [
        ({}, False),
        ({REQUIRE_PG_ENV: "1"}, True),
        ({REQUIRE_PG_ENV: "0"}, False),
        ({REQUIRE_PG_ENV: ""}, False),
        ({"CI": "true"}, True),
        ({"CI": "TRUE"}, True),
        ({"CI": "false"}, False),
    ],
)
def test_postgresql_is_required_in_ci_or_when_asked(environ, required):
    assert pg_required(environ) is required


async def test_an_unreachable_server_fails_the_test_where_postgresql_is_required():
    reason = await connect_admin(UNREACHABLE)
    assert isinstance(reason, str)
    assert NOT_TESTED in reason
    assert "127.0.0.1:9" in reason
    with pytest.raises(pytest.fail.Exception, match=NOT_TESTED):
        give_up(reason, {"CI": "true"})
    with pytest.raises(pytest.fail.Exception, match=REQUIRE_PG_ENV):
        give_up(reason, {REQUIRE_PG_ENV: "1"})


async def test_an_unreachable_server_skips_the_test_elsewhere():
    reason = await connect_admin(UNREACHABLE)
    assert isinstance(reason, str)
    with pytest.raises(pytest.skip.Exception, match=NOT_TESTED):
        give_up(reason, {})


def test_ci_requires_postgresql_before_the_readme_test_command():
    root = Path(__file__).resolve().parents[1]
    ci = (root / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    test_command = next(i for i, line in enumerate(ci) if line.endswith("&& pytest"))
    assert f"export {REQUIRE_PG_ENV}=1" in ci[:test_command]
