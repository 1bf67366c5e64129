"""Endpoints in config.toml and how ``NAME/MODEL`` names resolve (no server needed)."""

from __future__ import annotations

import pytest

from chatterm.config import load_config
from chatterm.errors import UsageError
from chatterm.services import EngineOptions, resolve
from tests.remote.conftest import write_config


def test_endpoint_fields_are_read_and_base_url_normalised(chatterm_home):
    write_config(
        chatterm_home,
        '[endpoints.gpu]\nbase_url = "http://gpu-box:8000/v1/"\n'
        'api_key_env = "GPU_KEY"\ntimeout = 900\n',
    )
    endpoint = load_config().endpoints["gpu"]
    assert (endpoint.base_url, endpoint.api_key_env, endpoint.timeout) == (
        "http://gpu-box:8000/v1", "GPU_KEY", 900.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('base_url = "http://h/v1"\napi_key = "sk-secret"', "must not hold an api_key"),
        ('base_url = "gpu-box:8000/v1"', "must start with http:// or https://"),
        ('base_url = "http://h/v1"\ntimeout = 0', "timeout must be more than 0"),
        ('base_url = "http://h/v1"\ntimout = 5', "unknown key 'timout'"),
        ('api_key_env = "K"', "needs a base_url"),
    ],
)
def test_bad_endpoint_is_a_one_line_usage_error(chatterm_home, body, message):
    write_config(chatterm_home, f"[endpoints.gpu]\n{body}\n")
    with pytest.raises(UsageError, match=message) as info:
        load_config()
    assert "\n" not in str(info.value)
    assert "sk-secret" not in str(info.value)


def test_only_a_configured_endpoint_name_makes_a_remote_model(chatterm_home):
    write_config(chatterm_home, '[endpoints.gpu]\nbase_url = "http://gpu-box:8000/v1"\n')
    config = load_config()
    endpoint, model = config.remote_model("gpu/meta-llama/Llama-3.1-8B-Instruct")
    assert (endpoint.name, model) == ("gpu", "meta-llama/Llama-3.1-8B-Instruct")
    assert config.remote_model("bartowski/SmolLM2-360M-Instruct-GGUF:Q4_K_M") is None
    assert config.remote_model("smollm2-135m-instruct") is None
    assert config.remote_model("./gpu/model.gguf") is None
    with pytest.raises(UsageError, match="name a model after gpu/"):
        config.remote_model("gpu/")


def test_resolve_names_the_remote_model_and_its_server(chatterm_home):
    write_config(
        chatterm_home,
        'default_model = "gpu/qwen3:8b"\n[endpoints.gpu]\nbase_url = "http://gpu-box:11434/v1"\n',
    )
    entry = resolve(EngineOptions())
    assert (entry.name, entry.source, entry.path) == (
        "gpu/qwen3:8b", "remote", "http://gpu-box:11434/v1",
    )  # fmt: skip
