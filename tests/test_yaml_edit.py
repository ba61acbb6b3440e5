"""adapters.yaml_edit: one value or list item changes; every other byte of vault.yml stays as written."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
import yaml

from adapters.yaml_edit import YamlEditError, add_item, block_text, flow, remove_item, set_value
from tests.seed_copy import copy_seed, problems

DOC = """\
# top comment
tasks:
  a:
    model: x   # the model
    options: {num_predict: 300, num_ctx: 8192}
    candidates: [m1, "m2", m3]
    inputs:
      - "In/*.md"   # first
      - Other/*.md

    expect:
      min_words: 10
  b:
    model: y
"""


def changed_lines(before: str, after: str) -> list[str]:
    return [ln for ln in difflib.ndiff(before.splitlines(), after.splitlines()) if ln[:1] in "+-"]


def test_a_knob_in_a_flow_mapping_changes_one_line_and_keeps_comments() -> None:
    out = set_value(DOC, ["tasks", "a", "options", "num_predict"], 600)
    assert changed_lines(DOC, out) == ["-     options: {num_predict: 300, num_ctx: 8192}",
                                       "+     options: {num_predict: 600, num_ctx: 8192}"]
    assert "# the model" in out and out.startswith("# top comment")


def test_a_new_key_lands_inside_a_flow_mapping_or_under_a_block_one() -> None:
    out = set_value(DOC, ["tasks", "a", "options", "think"], False)
    assert "options: {num_predict: 300, num_ctx: 8192, think: false}" in out
    out = set_value(DOC, ["tasks", "a", "postprocess"], "scripts/_p.sh")
    data = yaml.safe_load(out)
    assert data["tasks"]["a"]["postprocess"] == "scripts/_p.sh" and data["tasks"]["b"] == {"model": "y"}
    out = set_value(DOC, ["tasks", "b", "options", "think"], False)  # missing parent: created
    assert yaml.safe_load(out)["tasks"]["b"] == {"model": "y", "options": {"think": False}}


def test_a_scalar_value_is_replaced_in_place_with_its_comment() -> None:
    out = set_value(DOC, ["tasks", "a", "model"], "ollama:gemma3:12b")
    assert "    model: ollama:gemma3:12b   # the model\n" in out
    assert len(changed_lines(DOC, out)) == 2


@pytest.mark.parametrize("item", ["m1", "m2", "m3"])
def test_a_flow_list_item_is_removed_wherever_it_sits(item: str) -> None:
    out = remove_item(DOC, ["tasks", "a", "candidates"], item)
    assert yaml.safe_load(out)["tasks"]["a"]["candidates"] == [m for m in ["m1", "m2", "m3"] if m != item]
    assert len(changed_lines(DOC, out)) == 2


def test_block_list_items_are_added_and_removed_as_lines() -> None:
    out = remove_item(DOC, ["tasks", "a", "inputs"], "In/*.md")
    assert "# first" not in out and "      - Other/*.md\n" in out
    out = add_item(DOC, ["tasks", "a", "inputs"], "New/*.md")
    assert yaml.safe_load(out)["tasks"]["a"]["inputs"] == ["In/*.md", "Other/*.md", "New/*.md"]
    assert "      - New/*.md\n" in out
    out = add_item(DOC, ["tasks", "a", "candidates"], "m4")
    assert "candidates: [m1, \"m2\", m3, m4]" in out


def test_values_that_need_quotes_get_them() -> None:
    assert flow("a: b") == "'a: b'" and flow("scripts/x.sh") == "scripts/x.sh" and flow("yes") == "'yes'"
    out = set_value(DOC, ["tasks", "a", "model"], "a, b: c")
    assert yaml.safe_load(out)["tasks"]["a"]["model"] == "a, b: c"


def test_impossible_edits_are_refused() -> None:
    with pytest.raises(YamlEditError):
        set_value(DOC, ["tasks", "a", "model", "deeper"], 1)  # through a scalar
    with pytest.raises(YamlEditError):
        remove_item(DOC, ["tasks", "a", "candidates"], "absent")
    with pytest.raises(YamlEditError):
        add_item(DOC, ["tasks", "a", "options"], "x")  # not a list


def test_block_text_is_the_tasks_lines() -> None:
    block = block_text(DOC, ["tasks", "a"])
    assert block.startswith("  a:\n") and block.rstrip().endswith("min_words: 10") and "model: y" not in block


def test_edits_of_the_real_vault_yml_still_validate(tmp_path: Path) -> None:
    cfg = copy_seed(tmp_path)
    text = cfg.read_text()
    text = set_value(text, ["tasks", "morning-briefing", "options", "num_predict"], 600)
    text = set_value(text, ["tasks", "morning-briefing", "options", "think"], False)
    text = remove_item(text, ["tasks", "blog-writer", "candidates"], "ollama:qwen2.5-coder:14b")
    text = remove_item(text, ["tasks", "output-judge", "inputs"], "Deepened/*.md")  # the second line of a flow list
    cfg.write_text(text)
    assert problems(cfg) == []
    before = (Path(__file__).resolve().parent.parent / "vault.yml").read_text()
    assert len(changed_lines(before, text)) == 6
