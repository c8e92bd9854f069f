//go:build linux && !ppc64 && !ppc64le && !mips && !mipsle && !mips64 && !mips64le && !sparc64

package agent

// The ioctl direction bits of most architectures (asm-generic/ioctl.h).
const (
	iocDirShift = 30
	iocWrite    = 1
	iocRead     = 2
)
