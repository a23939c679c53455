# Builds the coordinator, the worker and the mxprobe client on Debian 12 and
# runs as an unprivileged user; docker-compose.yml picks the program.
FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
      pkg-config libhiredis-dev libc-ares-dev libev-dev libmsgpack-dev \
      libidn2-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DMXPROBE_BUILD_TESTS=OFF \
 && cmake --build /build -j "$(nproc)" \
 && cmake --install /build --prefix /opt/mxprobe

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libhiredis0.14 libc-ares2 \
      libev4 libmsgpackc2 libidn2-0 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home mxprobe
COPY --from=build /opt/mxprobe /opt/mxprobe
ENV PATH=/opt/mxprobe/bin:$PATH
USER mxprobe
CMD ["mxprobe-worker"]
