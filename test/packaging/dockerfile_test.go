package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for name, re := range map[string]string{
		"build stage runs on the build platform":         `(?m)^FROM --platform=\$BUILDPLATFORM golang:`,
		"cross-compiles for TARGETOS/TARGETARCH, static": `CGO_ENABLED=0 GOOS="\$TARGETOS" GOARCH="\$TARGETARCH"`,
		"GOARM from TARGETVARIANT":                       `GOARM="\$\{TARGETVARIANT#v\}"`,
		"runtime on Debian trixie slim":                  `(?m)^ARG DEBIAN_RELEASE=trixie$`,
		"runtime installs nfs-common":                    `apt-get install -y --no-install-recommends nfs-common`,
		// /etc/protocols: NFSv3 mounts failed without it ("Protocol not supported").
		"runtime installs netbase":    `apt-get install -y --no-install-recommends nfs-common netbase`,
		"binary at /usr/bin/nfs-csi":  `(?m)^COPY --from=build /out/nfs-csi /usr/bin/nfs-csi$`,
		"entrypoint /usr/bin/nfs-csi": `(?m)^ENTRYPOINT \["/usr/bin/nfs-csi"\]$`,
		"non-root user":               `(?m)^USER 65532:65532$`,
		"OCI labels":                  `org\.opencontainers\.image\.(source|version|revision)`,
	} {
		if !regexp.MustCompile(re).MatchString(df) {
			t.Errorf("Dockerfile: %s: no line matches %s", name, re)
		}
	}
	from := regexp.MustCompile(`(?m)^FROM .*$`).FindAllString(df, -1)
	if len(from) != 2 || regexp.MustCompile(`(?m)^FROM --platform=\S+ debian`).MatchString(df) {
		t.Errorf("Dockerfile: want two stages, the runtime one of the target platform: %q", from)
	}
}

func TestImagePlatforms(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "hack", "image.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^PLATFORMS=\$\{PLATFORMS:-(.*)\}$`).FindStringSubmatch(string(data))
	if m == nil || m[1] != "linux/amd64,linux/arm64,linux/arm/v7,linux/ppc64le,linux/s390x,linux/riscv64" {
		t.Errorf("make image builds %q, want the six platforms", m)
	}
}

// Without a Docker engine, make image falls back to podman (a single-platform
// build, slow): only check that asking for docker fails clearly.
func TestImageWithoutDockerFailsClearly(t *testing.T) {
	if exec.Command("docker", "info").Run() == nil {
		t.Skip("a Docker engine is available")
	}
	cmd := exec.Command(filepath.Join(repoRoot, "hack", "image.sh"))
	cmd.Env = append(os.Environ(), "IMAGE_BUILDER=docker")
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "needs") {
		t.Errorf("IMAGE_BUILDER=docker hack/image.sh = %v:\n%s", err, out)
	}
}
