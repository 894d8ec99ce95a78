"""Flags and --config YAML through the one typed conversion and the one set of rules, in-process (no server)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from server.launch.args import ServerArgs, ServerArgsError
from server.launch.cli import build_parser, parse_serve_args, serve


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "server.yaml"
    path.write_text(text)
    return str(path)


def test_sglang_command_lines_work_verbatim():
    args = parse_serve_args(
        ["--model-path", "/models/m", "--is-embedding", "--trust-remote-code", "--chat-template", "gme-qwen2-vl",
         "--json-model-override-args", '{"is_matryoshka": true}', "--attention-backend", "sdpa", "--tp-size", "1",
         "--dtype", "float16", "--served-model-name", "m", "--api-key", "k", "--allow-auto-truncate",
         "--max-prefill-tokens", "4096", "--max-running-requests", "8", "--host", "::1", "--port", "8000",
         "--context-length", "128", "--media-fetch-timeout", "2.5"]
    )  # fmt: skip
    assert (args.model_path, args.is_embedding, args.trust_remote_code, args.chat_template) == (
        "/models/m", True, True, "gme-qwen2-vl",
    )  # fmt: skip
    assert args.model_overrides() == {"is_matryoshka": True}
    assert (args.attention_backend, args.tp_size, args.dtype, args.served_model_name, args.api_key) == (
        "sdpa", 1, "float16", "m", "k",
    )  # fmt: skip
    assert (args.allow_auto_truncate, args.max_prefill_tokens, args.max_running_requests) == (True, 4096, 8)
    assert (args.host, args.port, args.context_length, args.media_fetch_timeout) == ("::1", 8000, 128, 2.5)


def test_every_option_has_one_name_the_flag_and_the_file_share(tmp_path):
    fields = [f.name for f in dataclasses.fields(ServerArgs)]
    flags = [a.dest for a in build_parser()._actions if a.dest != "help"]
    assert flags == fields
    assert all(f"--{name.replace('_', '-')}" in build_parser().format_help() for name in fields)


def test_precedence_is_defaults_then_file_then_flags_given(tmp_path):
    path = config(tmp_path, "port: 1234\nserved_model_name: from-file\nmax_running_requests: 16\nlog_requests: true\n")
    args = parse_serve_args(["--config", path, "--port", "30000", "--no-log-requests", "--max-running-requests", "8"])
    assert args.port == 30000  # a flag given with the default's value still wins over the file
    assert (args.max_running_requests, args.log_requests) == (8, False)
    assert args.served_model_name == "from-file"  # what the command line leaves alone comes from the file
    assert args.host == ServerArgs().host  # what neither gives is the default


def test_rules_see_file_and_flags_together(tmp_path):
    # each source alone breaks a rule against the other's default; together they are valid
    path = config(tmp_path, "max_request_bytes: 8000000\n")
    args = parse_serve_args(["--config", path, "--max-queued-tokens", "16000000"])
    assert (args.max_request_bytes, args.max_queued_tokens) == (8_000_000, 16_000_000)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_running_requests: 1.5\n", r"max_running_requests must be int, not float 1.5"),
        ("context_length: long\n", r"context_length must be int, not str 'long'"),
        ("media_fetch_timeout: 10s\n", r"media_fetch_timeout must be float, not str '10s'"),
        ("is_embedding: 1\n", r"is_embedding must be bool, not int 1"),
        ("served_model_name: 7\n", r"served_model_name must be str, not int 7"),
        ("port: true\n", r"port must be int, not bool True"),
        ("tp_size:\n", r"tp_size cannot be empty"),
    ],
)
def test_a_file_value_of_the_wrong_type_names_the_option_and_the_type(tmp_path, text, message):
    path = config(tmp_path, text)
    with pytest.raises(ServerArgsError, match=f"^--config {path}: {message}$"):
        parse_serve_args(["--config", path])


def test_a_secret_of_the_wrong_type_is_not_echoed(tmp_path):
    with pytest.raises(ServerArgsError, match="api_key must be str, not int$") as info:
        parse_serve_args(["--config", config(tmp_path, "api_key: 918273645\n")])
    assert "918273645" not in str(info.value)


@pytest.mark.parametrize("key", ["max_prefill_token", "max-batch-tokens", "config"])
def test_an_unknown_file_key_is_refused(tmp_path, key):
    name = key.replace("-", "_")
    with pytest.raises(ServerArgsError, match=f"unknown option '{name}'; options are the flag names"):
        parse_serve_args(["--config", config(tmp_path, f"{key}: 10\n")])


def test_an_option_spelled_twice_in_a_file_is_refused(tmp_path):
    with pytest.raises(ServerArgsError, match="names an option twice"):
        parse_serve_args(["--config", config(tmp_path, "max-running-requests: 8\nmax_running_requests: 16\n")])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--port", "abc"], "--port must be int, not 'abc'"),
        (["--max-prefill-tokens", "1.5"], "--max-prefill-tokens must be int, not '1.5'"),
        (["--media-fetch-timeout", "soon"], "--media-fetch-timeout must be float, not 'soon'"),
        (["--context-length", ""], "--context-length must be int, not ''"),
    ],
)
def test_a_flag_of_the_wrong_type_names_the_flag_and_the_type(flags, message):
    with pytest.raises(ServerArgsError, match=f"^{message}$"):
        parse_serve_args(flags)


def test_the_command_line_reports_bad_values_as_argparse_does(capsys):
    with pytest.raises(SystemExit) as stop:
        serve(["--port", "abc"], prog="embedserve serve")
    assert stop.value.code == 2
    assert capsys.readouterr().err == "embedserve serve: error: --port must be int, not 'abc'\n"
    with pytest.raises(SystemExit) as stop:
        serve(["--tp-size", "2", "--nnodes", "2"])
    assert stop.value.code == 2
    assert "--nnodes above 1 needs --dist-init-addr" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-request-bytes", "10", "--max-queued-tokens", "5"], "--max-request-bytes must not exceed --max-queued-tokens"),
        (["--api-key", "k", "--api-key-file", "/k"], "give --api-key or --api-key-file, not both"),
        (["--nnodes", "2", "--node-rank", "2", "--tp-size", "2", "--dist-init-addr", "h:1"],
         r"--node-rank 2 must lie in 0..1 \(--nnodes 2\)"),
        (["--tp-size", "3", "--nnodes", "2", "--dist-init-addr", "h:1"], "--tp-size 3 must divide by --nnodes 2"),
        (["--tp-size", "2", "--nnodes", "2"], "--nnodes above 1 needs --dist-init-addr HOST:PORT"),
        (["--dp-size", "3", "--dist-init-addr", "h:65535"], "port 65535 leaves no room for 3 replica ports"),
    ],
)  # fmt: skip
def test_each_rule_across_flags(flags, message):
    with pytest.raises(ServerArgsError, match=message):
        parse_serve_args(flags)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-running-requests", "0"], "--max-prefill-tokens and --max-running-requests must be at least 1"),
        (["--port", "0"], "--port 0 is not a valid port"),
        (["--attention-backend", "triton"], "--attention-backend 'triton' is not one of"),
        (["--log-level", "loud"], "--log-level 'loud' is not a log level"),
        (["--max-input-chars", "0"], "--max-input-chars must be positive"),
        (["--media-fetch-timeout", "nan"], "--media-fetch-timeout must be positive"),
        (["--shutdown-timeout", "-1"], "--shutdown-timeout must not be negative"),
        (["--allowed-media-domains", " , ."], "--allowed-media-domains names no host"),
        (["--json-model-override-args", "[1]"], "--json-model-override-args must be a JSON object"),
        (["--tp-size", "0"], "--tp-size must be at least 1"),
        (["--context-length", "0"], "--context-length must be at least 1"),
        (["--num-threads", "-2"], "--num-threads must be at least 1"),
        (["--dtype", "half"], "--dtype 'half' is not one of auto, float32, float16, bfloat16 .for SGLang's `half`"),
        (["--quantization", "awq"], "--quantization 'awq' is not one of int8"),
    ],
)
def test_each_value_rule(flags, message):
    with pytest.raises(ServerArgsError, match=message):
        parse_serve_args(flags)


def test_mm_processor_kwargs_reach_the_image_processor_as_typed_keywords(tmp_path):
    flag_value = '{"min_pixels": 200704, "max_pixels": 1003520}'
    args = parse_serve_args(["--mm-processor-kwargs", flag_value])
    assert args.image_processor_kwargs() == {"min_pixels": 200704, "max_pixels": 1003520}
    assert parse_serve_args(["--mm-processor-kwargs", '{"max_pixels": 1003520}']).image_processor_kwargs() == {
        "max_pixels": 1003520
    }
    assert ServerArgs().image_processor_kwargs() == {}  # the folder's own values
    path = config(tmp_path, "mm_processor_kwargs: {min_pixels: 200704, max_pixels: 1003520}\n")
    assert parse_serve_args(["--config", path]).image_processor_kwargs() == args.image_processor_kwargs()


@pytest.mark.parametrize(
    "value, message",
    [
        ('{"min_pixel": 200704}', "unknown field `min_pixel` (accepted keys: min_pixels, max_pixels)"),
        ('{"max_pixels": "1003520"}', "Expected `int | null`, got `str` - at `$.max_pixels`"),
        ('{"max_pixels": 1003520.5}', "Expected `int | null`, got `float`"),
        ('{"min_pixels": true}', "Expected `int | null`, got `bool`"),
        ("[200704, 1003520]", "Expected `object`, got `array`"),
        ("min_pixels=200704", "JSON is malformed"),
        ('{"min_pixels": 0}', "min_pixels must be positive, not 0"),
        ('{"min_pixels": 1003520, "max_pixels": 200704}', "min_pixels must not exceed max_pixels"),
    ],
)
def test_bad_mm_processor_kwargs_are_clear_startup_errors(value, message):
    with pytest.raises(ServerArgsError, match="^--mm-processor-kwargs: ") as error:
        parse_serve_args(["--mm-processor-kwargs", value])
    assert message in str(error.value)
