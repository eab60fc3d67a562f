# ArmoRM Explorer for an NVIDIA GPU host (the demo checkpoint also runs on CPU).
#   docker build -t armorm-explorer .
#   docker run --gpus all -p 7860:7860 -v armorm-cache:/home/app/.cache -e ARMORM_MODEL=RLHFlow/ArmoRM-Llama3-8B-v0.1 armorm-explorer
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    MALLOC_ARENA_MAX=2 \
    HF_HOME=/home/app/.cache/huggingface

RUN useradd --create-home --uid 1000 app
WORKDIR /home/app/armorm-explorer

COPY requirements.txt requirements-nodeps.txt ./
RUN pip install -r requirements.txt && pip install --no-deps -r requirements-nodeps.txt

COPY app.py ./
COPY armorm_ui ./armorm_ui
COPY assets ./assets

USER app
VOLUME ["/home/app/.cache"]
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"]
CMD ["python", "app.py"]
