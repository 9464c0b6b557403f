# The image of the production shape (docker-compose.yml): the worker, and `python -m intake`.
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
RUN pip install --no-cache-dir . && useradd --system runbooks
USER runbooks
CMD ["python", "worker.py"]
