//go:build linux && (ppc64 || ppc64le || mips || mipsle || mips64 || mips64le || sparc64)

package agent

// The ioctl direction bits of powerpc, mips and sparc.
const (
	iocDirShift = 29
	iocWrite    = 4
	iocRead     = 2
)
