from __future__ import annotations

from collections.abc import Iterator

import pytest

from siyu.integrations.wecom.fake import mount


@pytest.fixture(autouse=True)
def _no_mounted_fake() -> Iterator[None]:
    """A test that mounts the fake (an app with `fake_wecom=True`) leaves no saver thread behind."""
    yield
    if mount._mounted is not None:
        mount._mounted.stop.set()
        mount._mounted = None
