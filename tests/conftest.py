"""Shared pytest settings: the ``slow`` marker (``pytest -m "not slow"`` leaves those tests out)."""


def pytest_configure(config):
    """Registers the markers this suite uses."""
    config.addinivalue_line("markers", "slow: a test of a minute or more (subprocess fault injection)")
