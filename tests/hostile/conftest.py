"""The hostile world (tests/hostile/world.py), built once per database for this folder."""

from collections.abc import Iterator

import pytest

from tests.conftest import create_database, drop_database
from tests.hostile.world import World, build
from trials.core import migrate


@pytest.fixture(scope="package")
def world(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    url = create_database(backend, tmp_path_factory.mktemp("hostile"))
    try:
        migrate.upgrade(url)
        built = build(url)
        yield built
        built.app.extensions["trials_db"].engine.dispose()
    finally:
        drop_database(url)
