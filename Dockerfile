# webid-agent container image.
#
# Build from wheels made on the host, so the build needs no network:
#
#     pip wheel . -w dist/wheels
#     docker build -t webid-agent .
#
# BASE_IMAGE may be any Debian-like image with python3 >= 3.11 and its venv
# module: python:3.11-slim (the default) or a local debootstrap image, e.g.
#     docker build --build-arg BASE_IMAGE=webid-base:bookworm -t webid-agent .
#
# The agent runs as uid/gid 10001 and writes its token under
# /var/run/secrets/webid. A new named volume mounted there takes that
# directory's ownership, so the non-root agent can write to it.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# Marks the throwaway stage so the classic builder's leftover can be pruned.
LABEL org.webid-agent.stage=build
COPY dist/wheels/ /tmp/wheels/
RUN python3 -m venv /opt/webid \
 && /opt/webid/bin/pip install --no-index --no-cache-dir \
        --find-links /tmp/wheels webid-agent \
 && /opt/webid/bin/pip uninstall --yes --quiet pip setuptools

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="webid-agent" \
      org.opencontainers.image.description="AWS web identity tokens from an external OIDC provider" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 webid \
 && useradd --uid 10001 --gid 10001 --no-create-home --no-log-init \
        --home-dir /nonexistent --shell /usr/sbin/nologin webid \
 && mkdir -p /var/run/secrets/webid \
 && chown 10001:10001 /var/run/secrets/webid \
 && chmod 0755 /var/run/secrets/webid
COPY --from=build /opt/webid /opt/webid
ENV PATH=/opt/webid/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
ENTRYPOINT ["webid-agent"]
CMD ["run"]
