"""Name prefixes of the private temp folders a run makes, in the system temp folder.

Removed when their run ends; left behind only by a kill -9, so `adapters.workspace.sweep_orphans` removes them
once a day old (no run lasts a day: every script has a timeout). Kept here, with no imports, so the sweep (which
every command runs at start, the quick status path too) need not load the modules that make them.
"""

from __future__ import annotations

SANDBOX_TMP_PREFIX = "autovault-tmp-"  # adapters.sandbox: a confined run's private TMPDIR
TRACE_PREFIX = "autovault-trace-"  # adapters.process_trace: a traced run's call records and output
SHIMS_PREFIX = "autovault-shims-"  # adapters.process_trace: the shim folder, kept for the process (touched on use)
RUN_TEMP_PREFIXES = (SANDBOX_TMP_PREFIX, SHIMS_PREFIX, TRACE_PREFIX)
