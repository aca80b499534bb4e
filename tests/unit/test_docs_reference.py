"""The reference pages generated from the code (docs/gen_reference.py, run by MkDocs as a hook) cover all of it, and
refuse to build when the hand-written meanings and the code disagree."""

from __future__ import annotations

import re

import pytest

from docs import gen_reference
from jitr.outcomes import OUTCOME, Reason
from jitr_config.model import KNOWN_KEYS, PRODUCT_KEYS
from tests.support import REPO


def test_every_configuration_key_is_in_the_generated_table_with_its_default_from_the_code() -> None:
    table = gen_reference.configuration_table()

    for key in KNOWN_KEYS:
        assert f"`{key}`" in table, key
    assert "| `registerThingTps` | `10` |" in table
    assert "| `decisionEvents` | `" + '{"enabled": true, "bus": "default"}` |' in table


def test_a_key_the_code_knows_and_the_reference_does_not_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    meanings = {keys: text for keys, text in gen_reference.CONFIGURATION.items() if keys != ("maxReceiveCount",)}
    monkeypatch.setattr(gen_reference, "CONFIGURATION", meanings)

    with pytest.raises(gen_reference.ReferenceDrift, match="maxReceiveCount"):
        gen_reference.expand("<!-- generated: configuration -->")


def test_a_meaning_for_a_key_the_code_does_not_know_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    meanings = {**gen_reference.CONFIGURATION, ("retiredSetting",): "gone"}
    monkeypatch.setattr(gen_reference, "CONFIGURATION", meanings)

    with pytest.raises(gen_reference.ReferenceDrift, match="retiredSetting"):
        gen_reference.configuration_table()


def test_every_product_key_is_in_the_generated_table() -> None:
    table = gen_reference.product_keys_table()

    assert [row.split("|")[1].strip(" `") for row in table.splitlines()[2:]] == list(PRODUCT_KEYS)


def test_every_reason_is_in_the_generated_table_with_its_outcome() -> None:
    table = gen_reference.reasons_table()

    for reason in Reason:
        assert f"| `{reason}` | `{OUTCOME[reason]}` |" in table, reason


def test_the_cli_reference_has_every_command_from_the_parser() -> None:
    reference = gen_reference.cli_reference()

    for command in ("jitr", "jitr verify", "jitr template check", "jitr enroll import", "jitr revocation sync"):
        assert f"## `{command}`\n" in reference, command
    assert "usage: jitr verify" in reference


def test_an_unknown_marker_fails_the_build() -> None:
    with pytest.raises(gen_reference.ReferenceDrift, match="no generator named 'typo'"):
        gen_reference.expand("<!-- generated: typo -->")


@pytest.mark.parametrize(
    ("page", "name"),
    [
        ("reference/configuration.md", "configuration"),
        ("reference/configuration.md", "product-keys"),
        ("reference/reasons.md", "reasons"),
        ("reference/cli.md", "cli"),
    ],
)
def test_each_reference_page_is_generated(page: str, name: str) -> None:
    assert f"\n<!-- generated: {name} -->\n" in (REPO / "docs" / page).read_text()


def test_every_link_from_the_readme_into_the_site_names_a_page_and_an_anchor_it_has() -> None:
    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#]+)(?:#([^)]+))?\)", readme)

    assert links
    for page, anchor in links:
        text = (REPO / page).read_text()
        assert anchor == "" or f"## {anchor.replace('-', ' ')}" in text.lower(), (page, anchor)
