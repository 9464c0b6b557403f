# The image of the production shape (docker-compose.yml, deploy/k8s): the worker, and `python -m intake`.
# Only the production package: no devstack/, bench/ or tests/ (tests/test_production_shape.py checks).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY settings.py starter.py worker.py client.py signing.py ./
COPY contracts ./contracts
COPY workflows ./workflows
COPY activities ./activities
COPY runbook_cli ./runbook_cli
COPY intake ./intake
COPY policy ./policy
# the human runbooks: the console names each run's steps as they do
COPY runbooks ./runbooks
ENV RUNBOOK_DOCS=/app/runbooks
# a fixed numeric uid: Kubernetes' runAsNonRoot can check it (deploy/k8s runs as 10001)
RUN pip install --no-cache-dir . && useradd --system --uid 10001 --no-create-home runbooks
USER 10001
CMD ["python", "worker.py"]
