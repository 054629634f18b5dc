# The pause image: the "sandbox" of a pod on the Docker runtime.
#
# Kubernetes starts one pause container per pod before any of the pod's own
# containers. It holds the pod's network namespace (its address and ports);
# the app containers join it (`--network container:<pause>`), which is why
# the containers of one pod share `localhost`. The process itself does
# nothing: it sleeps until SIGTERM and reaps any zombie child, like
# Kubernetes' own `registry.k8s.io/pause`. Ours is the same static
# `demo-app` binary, run as `demo-app pause`.
FROM scratch
COPY demo-app /demo-app
USER 65535:65535
ARG VERSION=v1
LABEL org.opencontainers.image.title="pause" \
      org.opencontainers.image.version="${VERSION}"
ENTRYPOINT ["/demo-app", "pause"]
