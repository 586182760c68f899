# One image for every Python service; docker-compose picks the service by its command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install --no-cache-dir "uv==0.13.9" && useradd --create-home --uid 10001 minsheng
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY libs ./libs
COPY services ./services
COPY config ./config
COPY deploy/rabbitmq ./deploy/rabbitmq
RUN uv sync --frozen --no-dev \
 && uv run --frozen --no-dev minsheng-classify train --data services/classifier/corpus --model var/models/campaign \
 && mkdir -p var/intake-web var/intake-wechat var/intake-hotline var/intake-survey && chown -R minsheng /app/var
USER minsheng
ENV PATH=/app/.venv/bin:$PATH
EXPOSE 8000
