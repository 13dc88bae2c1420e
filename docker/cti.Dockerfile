# The CTI server.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cti/ cti/
COPY desk/ desk/
COPY reports/ reports/
RUN pip install --no-cache-dir .
EXPOSE 8080 4573
CMD ["cti", "serve"]
