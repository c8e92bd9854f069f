# nfs-csi build, test and packaging entry points. Each target is a thin
# wrapper over a script in hack/ so that CI and humans run the same thing.

SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
GIT_COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
PKG := github.com/example/nfs-csi
LDFLAGS := -s -w -X $(PKG)/pkg/driver.driverVersion=$(VERSION) -X $(PKG)/pkg/driver.gitCommit=$(GIT_COMMIT) -X $(PKG)/pkg/driver.buildDate=$(BUILD_DATE)
export VERSION GIT_COMMIT BUILD_DATE LDFLAGS

.PHONY: all build build-all test unit bench demo manifests helm-lint image clean e2e e2e-node e2e-storage

all: build

## build: the driver for this machine, at bin/nfs-csi
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/nfs-csi ./cmd/nfs-csi

## build-all: static binaries for the six release architectures, in bin/<os>-<arch>/
build-all:
	hack/build-all.sh

## test: everything: static checks, unit tests, fuzzing, packaging checks, csi-sanity and integration under UML, and e2e
test:
	hack/test.sh

## e2e: the driver on a real Kubernetes 1.37 control plane with the real sidecars and nfsd (test/e2e/README.md)
e2e:
	test/e2e/run.sh

## e2e-node: the chart's own pods (helm install, images from the Dockerfile) on a real kubelet v1.37 with containerd in the UML guest (test/e2e/README.md); part of make test but for a machine's first, cold run
e2e-node:
	test/e2e/node/run.sh

## e2e-storage: the Kubernetes storage test suite (e2e.test v1.37.2: provisioning, volumes, multiVolume, subPath, volumeIO) against the chart's pods on the real node (test/e2e/README.md); hours under UML
e2e-storage:
	test/e2e/storage/run.sh full

## unit: only the fast host-side checks and unit tests
unit:
	hack/test.sh --unit-only

## bench: the UML benchmark; prints a table and writes _output/bench.json
bench:
	hack/bench.sh $(BENCH_FLAGS)

## demo: a Kubernetes 1.37 control plane and kernel nfsd under UML: chart installed, PVC Bound, attached, mounted, a file on the export (about 2 minutes; the first run builds the control plane, about 35 minutes)
demo:
	hack/demo.sh

## manifests: regenerate deploy/ from the Helm chart
manifests:
	hack/manifests.sh

## helm-lint: lint the chart with default and full values
helm-lint:
	hack/helm-lint.sh

## image: the image from the Dockerfile: docker buildx (six platforms), or podman (this platform, an OCI archive) without a Docker engine
image:
	hack/image.sh

clean:
	rm -rf bin _output
