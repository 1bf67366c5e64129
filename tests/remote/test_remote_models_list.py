"""`chatterm models` lists the models of configured endpoints beside the local ones."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_models_lists_remote_models_and_down_endpoints(remote_home, key_env):
    result = run_cli("models", "--json", env=key_env)
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    remote = [r for r in rows.values() if r["source"] == "remote"]
    served = [r for r in remote if r["name"].startswith("local/") and not r["error"]]
    assert served, rows
    down = rows["down/"]
    assert down["error"]

    table = run_cli("models", env=key_env)
    assert table.returncode == 0
    assert served[0]["name"] in table.stdout and "remote" in table.stdout
    assert "smollm2-135m-instruct" in table.stdout  # local models are still listed
