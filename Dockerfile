# ArmoRM Explorer for an NVIDIA GPU host (the demo checkpoint also runs on CPU).
#   docker build -t armorm-explorer .
#   docker run --gpus all -p 7860:7860 -v armorm-cache:/home/app/.cache -v armorm-data:/home/app/data \
#     -e ARMORM_MODEL=RLHFlow/ArmoRM-Llama3-8B-v0.1 armorm-explorer
# With podman: `podman build --format docker` (its default, OCI, drops HEALTHCHECK), and `podman run --device
# nvidia.com/gpu=all` in place of `--gpus all`, after `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`.
# torch 2.13.0's CUDA build is for CUDA 13.0: the host needs NVIDIA driver 580 or later (README, Container).
# BASE is any image with Python 3.11 or later and its venv module: python:3.11-slim from a registry, or Debian
# bookworm made from Debian's packages alone (scripts/build_image.sh, which also builds with podman).
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    MALLOC_ARENA_MAX=2 \
    HF_HOME=/home/app/.cache/huggingface \
    ARMORM_DATA_DIR=/home/app/data

# the app's user owns everything it writes: the label database, the demo checkpoint, the Hugging Face cache
RUN useradd --create-home --uid 1000 app \
 && mkdir -p /home/app/data /home/app/.cache/huggingface \
 && chown -R app:app /home/app \
 && python3 -m venv /opt/venv
WORKDIR /home/app/armorm-explorer

COPY requirements.txt requirements-nodeps.txt ./
RUN pip install -r requirements.txt && pip install --no-deps -r requirements-nodeps.txt

COPY app.py ./
COPY armorm_ui ./armorm_ui
COPY assets ./assets

USER 1000:1000
VOLUME ["/home/app/.cache", "/home/app/data"]
EXPOSE 7860
# the first start downloads about 16 GB of weights into the cache volume: up to an hour before the page answers
HEALTHCHECK --interval=30s --timeout=5s --start-period=3600s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"]
CMD ["python", "app.py"]
