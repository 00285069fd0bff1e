"""The contract tests run real clusters too: the integration fixtures."""

from tests.integration.conftest import make_cluster  # noqa: F401
