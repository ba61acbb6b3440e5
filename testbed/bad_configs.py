"""Malformed and hostile vault.yml files: what `check` must answer with one clear line each — file, line, field,
fix — never a traceback, a hang, a huge echo or a pass.

`write_case` writes a tiny vault (the vault.yml text, `BASE_FILES` plus a case's own) into a folder. `CASES` are
(id, vault.yml text, extra files (None removes a base file), the expected problem lines); `SAFETY_CASES` are
(id, vault.yml text, a setup run on the folder, the expected line prefixes). `{root}` in an expected line stands
for the absolute vault root, `{base}` for the folder, `{outside}` for a folder beside the vault.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

HEAD = "vault: vault\ntasks:\n  brief:\n    prompt: prompts/brief.md\n    model: ollama:qwen3:8b\n"  # lines 1-5
BASE_FILES: dict[str, str] = {
    "vault/prompts/brief.md": "Summarise {context}\n",
    "vault/prompts/_judge.md": "Score 1-5\n",
    "vault/scripts/collect.sh": "#!/bin/sh\necho context\n",
    "vault/notes/a.md": "---\ntitle: a\n---\nnote\n",
    "vault/data/train.jsonl": '{"prompt": "p", "completion": "c"}\n',
}
GOOD_MODELS = "ollama, anthropic, openai, embedded"

# (id, vault.yml text, extra files (None removes a base file), expected problem lines)
CASES: list[tuple[str, str, dict[str, str | None], list[str]]] = [
    (
        "yaml-syntax",
        "vault: vault\ntasks:\n  brief:\n    prompt: a: b\n",
        {},
        [
            "vault.yml:4: YAML syntax error at column 14: mapping values are not allowed here"
            " — fix: quote values that contain ': ' and check the indentation of this line"
        ],
    ),
    (
        "yaml-tab",
        "vault: vault\ntasks:\n\tbrief: {}\n",
        {},
        [
            "vault.yml:3: YAML syntax error at column 1: while scanning for the next token, found character '\\t' that cannot start any token"
            " — fix: indent with spaces, not tabs"
        ],
    ),
    (
        "yaml-unclosed-flow",
        HEAD + "    inputs: [notes/*.md\n",
        {},
        ["vault.yml:7: YAML syntax error at column 1: while parsing a flow sequence, expected ',' or ']', but got"],
    ),
    (
        "yaml-two-documents",
        HEAD + "---\nvault: other\n",
        {},
        ["vault.yml:6: YAML syntax error at column 1: expected a single document in the stream, but found another"],
    ),
    (
        "yaml-python-tag",
        HEAD + "    options: !!python/object:os.system {}\n",
        {},
        ["vault.yml:6: YAML syntax error at column 14: could not determine a constructor for the tag"],
    ),
    (
        "yaml-undefined-alias",
        HEAD + "    options: *opts\n",
        {},
        ["vault.yml:6: YAML syntax error at column 14: found undefined alias 'opts' — fix: define the anchor"],
    ),
    (
        "control-character",
        HEAD + "    schedule: daily\x07 06:30\n",
        {},
        ["vault.yml:6: YAML syntax error: control character #x0007 — fix: remove it"],
    ),
    (
        "recursive-alias",
        HEAD + "    options: &loop\n      seed: *loop\n",
        {},
        [
            "vault.yml:7: tasks.brief.options.seed: an alias refers to a mapping that contains it — fix: remove the recursive"
        ],
    ),
    (
        "duplicate-top-level-key",
        HEAD + "vault: vault\n",
        {},
        [
            "vault.yml:6: vault: duplicate key 'vault' (first at line 1)"
            " — fix: keep one 'vault' entry; YAML would silently use the last one"
        ],
    ),
    (
        "duplicate-task-key",
        HEAD + "    model: ollama:gemma3:12b\n",
        {},
        [
            "vault.yml:6: tasks.brief.model: duplicate key 'model' (first at line 5)"
            " — fix: keep one 'model' entry; YAML would silently use the last one"
        ],
    ),
    (
        "top-level-list",
        "- vault: vault\n",
        {},
        [
            "vault.yml:1: the top level must be a mapping of keys, got a list — fix: start with `vault: .` and a `tasks:` mapping"
        ],
    ),
    (
        "empty-file",
        "# nothing yet\n",
        {},
        [
            "vault.yml: the top level must be a mapping of keys, it is empty — fix: start with `vault: .` and a `tasks:` mapping"
        ],
    ),
    (
        "top-level-scalar",
        "just words\n",
        {},
        ["vault.yml:1: the top level must be a mapping of keys, got a single value — fix: start with"],
    ),
    (
        "unknown-top-level-key",
        HEAD + "task: {}\n",
        {},
        ["vault.yml:6: task: unknown key 'task' — fix: did you mean 'tasks'?"],
    ),
    (
        "unknown-option-typo",
        HEAD + "    options: {num_predit: 600}\n",
        {},
        ["vault.yml:6: tasks.brief.options.num_predit: unknown key 'num_predit' — fix: did you mean 'num_predict'?"],
    ),
    (
        "unknown-key-no-near-match",
        HEAD + "    options: {flavour: sweet}\n",
        {},
        [
            "vault.yml:6: tasks.brief.options.flavour: unknown key 'flavour'"
            " — fix: remove it; valid keys here: num_predict, num_ctx, temperature, top_p, repeat_penalty, seed, think"
        ],
    ),
    (
        "misspelt-required-key",
        "vault: vault\ntasks:\n  brief:\n    promt: prompts/brief.md\n    model: ollama:qwen3:8b\n",
        {},
        [
            "vault.yml:3: tasks.brief.prompt: missing required key 'prompt'"
            " — fix: add `prompt: prompts/brief.md`, a file inside the vault",
            "vault.yml:4: tasks.brief.promt: unknown key 'promt' — fix: did you mean 'prompt'?",
        ],
    ),
    (
        "num-predict-not-a-number",
        HEAD + "    options:\n      num_predict: lots\n",
        {},
        [
            "vault.yml:7: tasks.brief.options.num_predict: expected an integer, got 'lots'"
            " — fix: set a whole number of tokens, e.g. 600"
        ],
    ),
    (
        "num-predict-negative",
        HEAD + "    options: {num_predict: -5}\n",
        {},
        [
            "vault.yml:6: tasks.brief.options.num_predict: must be above 0, got -5 — fix: set a whole number of tokens, e.g. 600"
        ],
    ),
    (
        "num-ctx-fraction",
        HEAD + "    options: {num_ctx: 8192.5}\n",
        {},
        [
            "vault.yml:6: tasks.brief.options.num_ctx: expected an integer, got 8192.5"
            " — fix: set the context window in tokens, e.g. 8192"
        ],
    ),
    (
        "temperature-too-high",
        HEAD + "    options: {temperature: 3}\n",
        {},
        [
            "vault.yml:6: tasks.brief.options.temperature: must be at most 2, got 3 — fix: use a number from 0 to 2, e.g. 0.7"
        ],
    ),
    (
        "repeat-penalty-zero",
        HEAD + "    options: {repeat_penalty: 0}\n",
        {},
        [
            "vault.yml:6: tasks.brief.options.repeat_penalty: must be above 0, got 0"
            " — fix: use a number above 0 and at most 3, e.g. 1.15 (1 is off)"
        ],
    ),
    (
        "embedded-temperature-too-high",
        "backends:\n  embedded: {temperature: 5}\n" + HEAD,
        {},
        [
            "vault.yml:2: backends.embedded.temperature: must be at most 2, got 5"
            " — fix: use a number from 0 to 2, e.g. 0.7"
        ],
    ),
    (
        "think-not-bool",
        HEAD + "    options: {think: maybe}\n",
        {},
        ["vault.yml:6: tasks.brief.options.think: expected true or false, got 'maybe' — fix: write true or false"],
    ),
    (
        "options-is-a-list",
        HEAD + "    options: [600]\n",
        {},
        [
            "vault.yml:6: tasks.brief.options: expected a mapping, got a list"
            " — fix: write a mapping, e.g. options: {num_predict: 600, num_ctx: 8192}"
        ],
    ),
    (
        "missing-model-points-at-task",
        "vault: vault\ntasks:\n  brief:\n    prompt: prompts/brief.md\n",
        {},
        [
            "vault.yml:3: tasks.brief.model: missing required key 'model' — fix: add `model: ollama:qwen3:8b` (backend:name)"
        ],
    ),
    (
        "missing-vault",
        "tasks:\n  brief:\n    prompt: prompts/brief.md\n    model: ollama:qwen3:8b\n",
        {},
        [
            "vault.yml:1: vault: missing required key 'vault' — fix: add `vault: .` (the vault folder, relative to vault.yml)"
        ],
    ),
    (
        "missing-tasks",
        "vault: vault\n",
        {},
        ["vault.yml:1: tasks: missing required key 'tasks' — fix: add `tasks:` with at least one task"],
    ),
    (
        "tasks-is-a-list",
        "vault: vault\ntasks:\n  - brief\n",
        {},
        ["vault.yml:2: tasks: expected a mapping, got a list — fix: write a mapping of task names to tasks"],
    ),
    (
        "task-is-empty",
        HEAD + "  empty:\n",
        {},
        [
            "vault.yml:6: tasks.empty: expected a mapping, got nothing (null)"
            " — fix: give each task a mapping with at least prompt: and model:"
        ],
    ),
    (
        "bad-task-name",
        HEAD + "  Morning_Briefing:\n    prompt: prompts/brief.md\n    model: ollama:qwen3:8b\n",
        {},
        [
            "vault.yml:6: tasks.Morning_Briefing: task name 'Morning_Briefing' must be lowercase letters, digits"
            " and '-', not starting with '-' — fix: rename it, e.g. 'morning-briefing'"
        ],
    ),
    (
        "unknown-proposer",
        HEAD + "proposers: [rules, antropic]\n",
        {},
        [
            "vault.yml:6: proposers[1]: unknown value 'antropic', expected one of rules, anthropic, ollama, embedded,"
            " openai — fix: did you mean 'anthropic'?"
        ],
    ),
    (
        "threshold-out-of-range",
        HEAD + "research: {threshold: 6}\n",
        {},
        ["vault.yml:6: research.threshold: must be at most 5, got 6 — fix: use a score from 1 to 5, e.g. 3.5"],
    ),
    (
        "target-below-threshold",
        HEAD + "research:\n  threshold: 3.5\n  target: 3.0\n",
        {},
        [
            "vault.yml:8: research.target: target 3.0 is below threshold 3.5"
            " — fix: set research.target to at least 3.5, or lower research.threshold"
        ],
    ),
    (
        "max-samples-below-samples",
        HEAD + "research:\n  samples: 5\n  max_samples: 3\n",
        {},
        [
            "vault.yml:8: research.max_samples: max_samples 3 is below samples 5 — fix: set research.max_samples to at least 5"
        ],
    ),
    (
        "research-window-malformed",
        HEAD + "research: {window: '1am-6am'}\n",
        {},
        [
            "vault.yml:6: research.window: expected 'HH:MM-HH:MM', e.g. '01:00-06:00' — fix: write 'HH:MM-HH:MM' in quotes"
        ],
    ),
    (
        "research-window-sexagesimal",
        HEAD + "research: {window: 1:30}\n",
        {},
        [
            "vault.yml:6: research.window: expected a string, got 90"
            " — fix: quote the value: YAML reads unquoted 1:30 or 1e3 as a number"
        ],
    ),
    (
        "editable-not-a-list",
        HEAD + "research: {editable: prompts/**}\n",
        {},
        [
            "vault.yml:6: research.editable: expected a list, got 'prompts/**'"
            ' — fix: write a list of globs relative to the vault root, e.g. ["prompts/**"]'
        ],
    ),
    (
        "approve-absolute-glob",
        HEAD + "research:\n  approve:\n    - /etc/**\n",
        {},
        [
            "vault.yml:8: research.approve[0]: pattern '/etc/**' must be relative to the vault root, not absolute"
            ' — fix: write a list of globs relative to the vault root, e.g. ["scripts/**"]'
        ],
    ),
    (
        "judge-context-lines-zero",
        HEAD + "judge: {context_lines: 0}\n",
        {},
        [
            "vault.yml:6: judge.context_lines: must be at least 1, got 0 — fix: use a whole number of lines from 1 to 400, e.g. 40"
        ],
    ),
    (
        "vault-root-missing",
        "vault: nowhere\ntasks:\n  brief:\n    prompt: prompts/brief.md\n    model: ollama:qwen3:8b\n",
        {},
        [
            "vault.yml:1: vault: vault folder 'nowhere' does not exist"
            " — fix: create {base}/nowhere or correct `vault:` (it is relative to the folder of vault.yml)"
        ],
    ),
    (
        "vault-root-is-a-file",
        "vault: vault/notes/a.md\ntasks:\n  brief:\n    prompt: prompts/brief.md\n    model: ollama:qwen3:8b\n",
        {},
        [
            "vault.yml:1: vault: vault 'vault/notes/a.md' is a file, not a folder — fix: point `vault:` at the vault folder"
        ],
    ),
    (
        "prompt-missing-with-suggestion",
        "vault: vault\ntasks:\n  brief:\n    prompt: prompts/brif.md\n    model: ollama:qwen3:8b\n",
        {},
        [
            "vault.yml:4: tasks.brief.prompt: 'prompts/brif.md' does not exist in the vault — fix: did you mean 'prompts/brief.md'?"
        ],
    ),
    (
        "prompt-missing-no-suggestion",
        "vault: vault\ntasks:\n  brief:\n    prompt: prompts/zzz.md\n    model: ollama:qwen3:8b\n",
        {},
        [
            "vault.yml:4: tasks.brief.prompt: 'prompts/zzz.md' does not exist in the vault"
            " — fix: create it or correct the path (relative to the vault root {root})"
        ],
    ),
    (
        "prompt-escapes-vault",
        "vault: vault\ntasks:\n  brief:\n    prompt: ../outside.md\n    model: ollama:qwen3:8b\n",
        {"outside.md": "x"},
        [
            "vault.yml:4: tasks.brief.prompt: '../outside.md' is outside the vault"
            " — fix: move the file into the vault and give its path relative to the vault root"
        ],
    ),
    (
        "prompt-absolute-outside",
        "vault: vault\ntasks:\n  brief:\n    prompt: /etc/hostname\n    model: ollama:qwen3:8b\n",
        {},
        ["vault.yml:4: tasks.brief.prompt: '/etc/hostname' is outside the vault — fix: move the file into the vault"],
    ),
    (
        "prompt-is-a-folder",
        "vault: vault\ntasks:\n  brief:\n    prompt: prompts\n    model: ollama:qwen3:8b\n",
        {},
        [
            "vault.yml:4: tasks.brief.prompt: 'prompts' is a folder, not a file — fix: point it at a file inside that folder"
        ],
    ),
    (
        "collect-script-missing",
        HEAD + "    collect: scripts/gather.sh\n",
        {},
        [
            "vault.yml:6: tasks.brief.collect: 'scripts/gather.sh' does not exist in the vault — fix: create it or correct the path"
        ],
    ),
    (
        "postprocess-escapes-with-dotdot",
        HEAD + "    postprocess: scripts/../../post.sh\n",
        {"post.sh": "#!/bin/sh\n"},
        [
            "vault.yml:6: tasks.brief.postprocess: 'scripts/../../post.sh' is outside the vault — fix: move the file into"
        ],
    ),
    (
        "judge-rubric-missing",
        HEAD + "judge: {rubric: prompts/judge.md}\n",
        {},
        [
            "vault.yml:6: judge.rubric: 'prompts/judge.md' does not exist in the vault — fix: did you mean 'prompts/_judge.md'?"
        ],
    ),
    (
        "task-rubric-missing",
        HEAD + "    rubric: rubrics/brief.md\n",
        {},
        [
            "vault.yml:6: tasks.brief.rubric: 'rubrics/brief.md' does not exist in the vault — fix: create it or correct the path"
        ],
    ),
    (
        "input-glob-matches-nothing",
        HEAD + "    inputs: [Drafts/brief-*.md]\n",
        {},
        [
            "vault.yml:6: tasks.brief.inputs[0]: glob 'Drafts/brief-*.md' matches nothing and no task writes it"
            " — fix: correct the glob, create a matching file, or list it in the producing task's outputs"
        ],
    ),
    (
        "input-glob-absolute",
        HEAD + "    inputs: [/home/me/notes/*.md]\n",
        {},
        [
            "vault.yml:6: tasks.brief.inputs[0]: pattern '/home/me/notes/*.md' must be relative to the vault root,"
            ' not absolute — fix: write a list of globs relative to the vault root, e.g. ["Drafts/brief-*.md"]'
        ],
    ),
    (
        "input-glob-climbs-out",
        HEAD + "    inputs: [../notes/*.md]\n",
        {},
        [
            "vault.yml:6: tasks.brief.inputs[0]: pattern '../notes/*.md' leads outside the vault — fix: write a list of globs"
        ],
    ),
    (
        "input-glob-invalid-double-star",
        HEAD + "    inputs: ['notes/**a.md']\n",
        {},
        [
            "vault.yml:6: tasks.brief.inputs[0]: glob 'notes/**a.md' is not valid: Invalid pattern: '**' can only be an entire"
        ],
    ),
    (
        "output-unknown-placeholder",
        HEAD + "    outputs: ['Briefings/{day}.md']\n",
        {},
        [
            "vault.yml:6: tasks.brief.outputs[0]: output 'Briefings/{day}.md' uses {day}; only {date} and {name} are filled"
            ' in — fix: write a list of paths relative to the vault root, e.g. ["Briefings/{date}.md"]'
        ],
    ),
    (
        "output-unmatched-brace",
        HEAD + "    outputs: ['Briefings/{date.md']\n",
        {},
        [
            "vault.yml:6: tasks.brief.outputs[0]: output 'Briefings/{date.md' has an unmatched brace — fix: write a list of paths"
        ],
    ),
    (
        "output-outside-vault",
        HEAD + "    outputs: ['../Briefings/{date}.md']\n",
        {},
        [
            "vault.yml:6: tasks.brief.outputs[0]: pattern '../Briefings/{date}.md' leads outside the vault — fix: write a list"
        ],
    ),
    (
        "training-data-matches-nothing",
        HEAD + "    training: {data: data/brief/*.jsonl}\n",
        {},
        [
            "vault.yml:6: tasks.brief.training.data: glob 'data/brief/*.jsonl' matches no files"
            " — fix: add the JSONL training files or correct the glob (relative to the vault root)"
        ],
    ),
    (
        "training-without-data",
        HEAD + "    training:\n      base_model: smollm2\n",
        {},
        ["vault.yml:6: tasks.brief.training.data: missing required key 'data' — fix: add `data: data/brief/*.jsonl`"],
    ),
    (
        "model-without-backend",
        "vault: vault\ntasks:\n  brief:\n    prompt: prompts/brief.md\n    model: qwen3:8b\n",
        {},
        [
            f"vault.yml:5: tasks.brief.model: model 'qwen3:8b' names unknown backend 'qwen3' (known: {GOOD_MODELS})"
            " — fix: name the backend first, e.g. ollama:qwen3:8b"
        ],
    ),
    (
        "model-backend-typo",
        "vault: vault\ntasks:\n  brief:\n    prompt: prompts/brief.md\n    model: olama:qwen3:8b\n",
        {},
        [
            f"vault.yml:5: tasks.brief.model: model 'olama:qwen3:8b' names unknown backend 'olama' (known: {GOOD_MODELS})"
            " — fix: did you mean 'ollama:qwen3:8b'?"
        ],
    ),
    (
        "model-no-colon",
        "vault: vault\ntasks:\n  brief:\n    prompt: prompts/brief.md\n    model: gpt4\n",
        {},
        [
            "vault.yml:5: tasks.brief.model: model 'gpt4' must look like 'backend:name' (e.g. ollama:qwen3:8b, embedded:smollm2-135m)"
        ],
    ),
    (
        "model-not-a-string",
        "vault: vault\ntasks:\n  brief:\n    prompt: prompts/brief.md\n    model: 8\n",
        {},
        ["vault.yml:5: tasks.brief.model: expected a string, got 8 — fix: write backend:name, e.g. ollama:qwen3:8b"],
    ),
    (
        "candidate-unknown-backend",
        HEAD + "    candidates:\n      - ollama:qwen3:8b\n      - lmstudio:phi4\n",
        {},
        ["vault.yml:8: tasks.brief.candidates[1]: model 'lmstudio:phi4' names unknown backend 'lmstudio'"],
    ),
    (
        "judge-model-typo",
        HEAD + "judge: {model: embeded:smollm2-135m}\n",
        {},
        ["vault.yml:6: judge.model: model 'embeded:smollm2-135m' names unknown backend 'embeded'"],
    ),
    (
        "forbid-regex-broken",
        HEAD + "    expect: {forbid: ['(or ']}\n",
        {},
        [
            "vault.yml:6: tasks.brief.expect.forbid: '(or ' is not a valid regular expression (missing ), unterminated subpattern"
        ],
    ),
    (
        "blocks-regex-broken",
        HEAD + "    expect:\n      blocks: {regex: '^=== NOTE: [ ==='}\n",
        {},
        ["vault.yml:7: tasks.brief.expect.blocks.regex: '^=== NOTE: [ ===' is not a valid regular expression"],
    ),
    (
        "blocks-without-regex",
        HEAD + "    expect:\n      blocks: {min: 2}\n",
        {},
        [
            "vault.yml:7: tasks.brief.expect.blocks.regex: missing required key 'regex' — fix: add `regex: '^=== NOTE: (.+) ===$'`"
        ],
    ),
    (
        "schedule-bad-time",
        HEAD + "    schedule: daily 25:00\n",
        {},
        [
            "vault.yml:6: tasks.brief.schedule: schedule 'daily 25:00': time '25:00' is not a clock time (00:00 to 23:59) — fix: use"
        ],
    ),
    (
        "schedule-unknown-form",
        HEAD + "    schedule: sometimes\n",
        {},
        ["vault.yml:6: tasks.brief.schedule: schedule 'sometimes' is not one of 'daily 06:30', 'weekly mon 06:30'"],
    ),
    (
        "schedule-bad-cron",
        HEAD + "    schedule: '61 * * * *'\n",
        {},
        [
            "vault.yml:6: tasks.brief.schedule: schedule '61 * * * *': minute '61' must be a number from 0 to 59 — fix: use"
        ],
    ),
    (
        "store-wrong-scheme",
        HEAD + "store: mysql://root@localhost/db\n",
        {},
        [
            "vault.yml:6: store: store 'mysql://root@localhost/db' must start with sqlite:/// or postgresql:// (or"
            " postgresql+psycopg://) — fix: write sqlite:///.autovault/events.db or postgresql+psycopg://user@host/db"
        ],
    ),
    (
        "store-sqlite-two-slashes",
        HEAD + "store: sqlite://events.db\n",
        {},
        ["vault.yml:6: store: store 'sqlite://events.db' must start with sqlite:/// or postgresql://"],
    ),
    (
        "store-sqlite-no-file",
        HEAD + "store: sqlite:///\n",
        {},
        ["vault.yml:6: store: store 'sqlite:///' names no database file — fix: write sqlite:///"],
    ),
    (
        "ollama-host-not-url",
        HEAD + "backends:\n  ollama: {host: 'localhost:11434'}\n",
        {},
        [
            "vault.yml:7: backends.ollama.host: 'localhost:11434' is not an http(s) URL — fix: write an http URL, e.g. http://127.0.0.1:11434"
        ],
    ),
    (
        "anthropic-key-typo",
        HEAD + "backends:\n  anthropic: {api_key: sk-123}\n",
        {},
        ["vault.yml:7: backends.anthropic.api_key: unknown key 'api_key' — fix: did you mean 'api_key_env'?"],
    ),
    (
        "source-in-yaml",
        HEAD + "source: /tmp/vault.yml\n",
        {},
        ["vault.yml:6: source: 'source' is filled in by autovault, not read from vault.yml — fix: remove `source:`"],
    ),
    (
        "root-in-yaml",
        HEAD + "root: /tmp\n",
        {},
        ["vault.yml:6: root: 'root' is filled in by autovault, not read from vault.yml — fix: remove `root:`"],
    ),
    (
        "logs-outside-vault",
        HEAD + "logs: ../logs\n",
        {},
        [
            "vault.yml:6: logs: logs folder '../logs' is outside the vault — fix: put the heartbeat logs in a folder inside the vault"
        ],
    ),
    (
        "list-as-key",
        HEAD + "? [a, b]\n: c\n",
        {},
        ["vault.yml:6: a key must be plain text, not a list or mapping — fix: write the key as a word"],
    ),
    (
        "two-problems-in-file-order",
        "vault: vault\ntasks:\n  brief:\n    prompt: prompts/breif.md\n    model: ollama:qwen3:8b\n    timeout: 0\n",
        {},
        [
            "vault.yml:4: tasks.brief.prompt: 'prompts/breif.md' does not exist in the vault — fix: did you mean 'prompts/brief.md'?",
            "vault.yml:6: tasks.brief.timeout: must be above 0, got 0 — fix: use seconds, a number above 0, e.g. 120",
        ],
    ),
]


def write_case(tmp_path: Path, text: str | bytes, files: dict[str, str | None]) -> None:
    for rel, content in {**BASE_FILES, **files}.items():
        target = tmp_path / rel
        if content is None:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    (tmp_path / "vault/scripts/collect.sh").chmod(0o755)
    if isinstance(text, bytes):
        (tmp_path / "vault.yml").write_bytes(text)
    else:
        (tmp_path / "vault.yml").write_text(text)


Setup = Callable[[Path], None]


def laughs(levels: int = 9) -> str:
    """The 'billion laughs': 9 anchors of 9 aliases each, about 1 KB, 9^9 values when expanded."""
    lines = ['  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def link(rel: str, target: str) -> Setup:
    """A symlink at vault/`rel` to `target` under the folder beside the vault (created with some content)."""

    def make(base: Path) -> None:
        outside = base / "outside" / target
        outside.parent.mkdir(parents=True, exist_ok=True)
        if "." in outside.name:
            outside.write_text("secret\n")
        else:
            outside.mkdir(exist_ok=True)
            (outside / "x.md").write_text("secret\n")
            (outside / "a.jsonl").write_text('{"prompt": "p", "completion": "c"}\n')
        at = base / "vault" / rel
        at.parent.mkdir(parents=True, exist_ok=True)
        at.symlink_to(outside)

    return make


BIG = "x" * 600_000
# (id, vault.yml text, setup, expected problem lines (prefixes))
SAFETY_CASES: list[tuple[str, str, Setup | None, list[str]]] = [
    ("billion-laughs", HEAD + "    options: {}\nanchors:\n" + laughs(), None,
     ["vault.yml:8: aliases (*name) expand to more than 20000 values — fix: use each anchor once or twice"]),
    ("nested-brackets", HEAD + "    options: " + "[" * 5000 + "]" * 5000 + "\n", None,
     ["vault.yml:6: brackets nested deeper than 32 levels — fix: vault.yml needs a few levels of nesting"]),
    ("nested-mappings", HEAD + "".join("  " * (i + 2) + f"k{i}:\n" for i in range(40)) + "  " * 42 + "x: 1\n", None,
     ["vault.yml:36: nested deeper than 32 levels — fix: vault.yml needs a few levels of nesting"]),
    ("ten-megabyte-file", HEAD + "    schedule: '" + "x" * 10_000_000 + "'\n", None,
     ["vault.yml: 9.5 MB, more than the 1 MB a vault.yml may have — fix: keep long text"]),
    ("huge-value-clipped", HEAD + f"    schedule: '{BIG}'\n", None,
     ["vault.yml:6: tasks.brief.schedule: schedule 'xxxxxxxxxx"]),
    ("huge-path-clipped", HEAD.replace("prompts/brief.md", BIG), None,
     ["vault.yml:4: tasks.brief.prompt: 'xxxxxxxxxx"]),
    ("huge-key", HEAD + f"  {BIG}:\n    prompt: prompts/brief.md\n", None,
     ["vault.yml:6: YAML syntax error at column 600003: while scanning a simple key, could not find expected ':'"]),
    ("num-predict-1e30", HEAD + "    options: {num_predict: 1.0e+30}\n", None,
     ["vault.yml:6: tasks.brief.options.num_predict: unable to parse input string as an integer, exceeded maximum "
      "size — fix: set a whole number of tokens"]),
    ("num-predict-5e6", HEAD + "    options: {num_predict: 5000000}\n", None,
     ["vault.yml:6: tasks.brief.options.num_predict: must be at most 4194304, got 5000000 — fix: set a whole number"]),
    ("timeout-inf", HEAD + "    timeout: .inf\n", None,
     ["vault.yml:6: tasks.brief.timeout: expected a finite number, got inf — fix: use seconds"]),
    ("temperature-nan", HEAD + "    options: {temperature: .nan}\n", None,
     ["vault.yml:6: tasks.brief.options.temperature: expected a finite number, got nan — fix: use a number from 0"]),
    ("n-ctx-1e20", HEAD + "backends:\n  embedded: {n_ctx: 1.0e+20}\n", None,
     ["vault.yml:7: backends.embedded.n_ctx: unable to parse input string as an integer, exceeded maximum size — "
      "fix: use a whole number of tokens"]),
    ("seed-beyond-int64", HEAD + "    options: {seed: 99999999999999999999999}\n", None,
     ["vault.yml:6: tasks.brief.options.seed: must be at most 9223372036854775807, got 99999999999999999999999"]),
    ("samples-billion", HEAD + "research: {samples: 1000000000, max_samples: 1000000000}\n", None,
     ["vault.yml:6: research.samples: must be at most 10000, got 1000000000",
      "vault.yml:6: research.max_samples: must be at most 10000, got 1000000000"]),
    ("blocks-min-above-max", HEAD + "    expect:\n      blocks: {regex: '^x$', min: 5, max: 3}\n", None,
     ["vault.yml:7: tasks.brief.expect.blocks: max 3 is below min 5: no output could pass — fix: set blocks.max to"]),
    ("words-min-above-max", HEAD + "    expect: {min_words: 50, max_words: 10}\n", None,
     ["vault.yml:6: tasks.brief.expect: max_words 10 is below min_words 50: no output could pass — fix: set "
      "expect.max_words"]),
    ("no-tasks", "vault: vault\ntasks: {}\n", None,
     ["vault.yml:2: tasks: no tasks: a vault needs at least one — fix: add at least one task"]),
    ("prompt-symlinked-outside", HEAD.replace("prompts/brief.md", "prompts/linked.md"),
     link("prompts/linked.md", "id_rsa.md"),
     ["vault.yml:4: tasks.brief.prompt: 'prompts/linked.md' is outside the vault (through a symlink) — fix: move"]),
    ("prompt-in-symlinked-folder", HEAD.replace("prompts/brief.md", "shared/x.md"), link("shared", "home"),
     ["vault.yml:4: tasks.brief.prompt: 'shared/x.md' is outside the vault (through a symlink)"]),
    ("collect-symlinked-outside", HEAD + "    collect: scripts/linked.sh --all\n", link("scripts/linked.sh", "evil.sh"),
     ["vault.yml:6: tasks.brief.collect: 'scripts/linked.sh' is outside the vault (through a symlink)"]),
    ("rubric-symlinked-outside", HEAD + "    rubric: prompts/judge.md\n", link("prompts/judge.md", "judge.md"),
     ["vault.yml:6: tasks.brief.rubric: 'prompts/judge.md' is outside the vault (through a symlink)"]),
    ("input-glob-reaches-outside", HEAD + "    inputs: [notes/*.md]\n", link("notes/stolen.md", "passwd.md"),
     ["vault.yml:6: tasks.brief.inputs[0]: glob 'notes/*.md' matches 'notes/stolen.md', a symlink to outside"]),
    ("output-folder-symlinked-outside", HEAD + "    outputs: ['Out/{date}.md']\n", link("Out", "etc"),
     ["vault.yml:6: tasks.brief.outputs[0]: output 'Out/{date}.md' lands outside the vault (through a symlink)"]),
    ("training-data-symlinked-outside", HEAD + "    training: {data: 'feed/*.jsonl'}\n", link("feed", "feed"),
     ["vault.yml:6: tasks.brief.training.data: glob 'feed/*.jsonl' matches 'feed/a.jsonl', a symlink to outside"]),
    ("logs-symlinked-outside", HEAD + "logs: heartbeat\n", link("heartbeat", "logs"),
     ["vault.yml:6: logs: logs folder 'heartbeat' is outside the vault"]),
]
