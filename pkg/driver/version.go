package driver

import (
	"fmt"
	"runtime"
)

// Stamped at link time by the Makefile through -ldflags -X.
var (
	driverVersion = "v0.0.0-dev"
	gitCommit     = "unknown"
	buildDate     = "unknown"
)

// Version returns the driver's release version.
func Version() string { return driverVersion }

// VersionInfo is the one-line text that --version prints: version, commit,
// build date, and the Go toolchain, OS and architecture the binary was built for.
func VersionInfo() string {
	return fmt.Sprintf("nfs-csi %s commit=%s built=%s go=%s os=%s arch=%s",
		driverVersion, gitCommit, buildDate, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
