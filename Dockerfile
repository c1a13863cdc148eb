FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY gateway gateway
COPY channels channels
COPY workers workers
COPY knowledge_base knowledge_base
RUN pip install --no-cache-dir .
ENV GATEWAY_HOST=0.0.0.0
EXPOSE 8080
CMD ["gateway", "serve"]
