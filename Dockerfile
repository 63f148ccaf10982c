# amlmigrate container image: the binary on a small non-root runtime, for `schedule install`.
#
#   docker build -t registry.example.com/amlmigrate:0.1.0 .
#   docker push registry.example.com/amlmigrate:0.1.0
#
# The binary links glibc dynamically (TLS is rustls with aws-lc-rs, compiled in; zstd is
# bundled), so the runtime is distroless "cc" on the same Debian release as the build image.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin amlmigrate \
 && install -D -m 0755 target/release/amlmigrate /out/amlmigrate \
 && /out/amlmigrate --version

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/amlmigrate /usr/local/bin/amlmigrate
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/amlmigrate"]
CMD ["--help"]
