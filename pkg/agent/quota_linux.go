package agent

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// golang.org/x/sys/unix v0.49 has neither the fsxattr ioctls nor the quota
// commands and structs, so they are spelled out here from the kernel's
// include/uapi/linux/fs.h, quota.h and dqblk_xfs.h.
const (
	fsIocFsGetXattr    uint = iocRead<<iocDirShift | 28<<16 | 'X'<<8 | 31  // _IOR('X', 31, struct fsxattr); 0x801c581f on x86
	fsIocFsSetXattr    uint = iocWrite<<iocDirShift | 28<<16 | 'X'<<8 | 32 // _IOW('X', 32, struct fsxattr); 0x401c5820 on x86
	fsXflagProjInherit      = 0x00000200

	prjQuota = 2 // PRJQUOTA

	qGetQuota  = 0x800007   // Q_GETQUOTA
	qSetQuota  = 0x800008   // Q_SETQUOTA
	qXGetQuota = 'X'<<8 + 3 // Q_XGETQUOTA
	qXSetQLim  = 'X'<<8 + 4 // Q_XSETQLIM

	qifBLimits = 1 // QIF_BLIMITS
	qifILimits = 4 // QIF_ILIMITS
	qifLimits  = qifBLimits | qifILimits

	fsDquotVersion = 1      // FS_DQUOT_VERSION
	fsProjQuota    = 2      // FS_PROJ_QUOTA
	fsDqBSoft      = 1 << 2 // FS_DQ_BSOFT
	fsDqBHard      = 1 << 3 // FS_DQ_BHARD

	xfsSuperMagic  = 0x58465342
	ext4SuperMagic = 0xef53

	sysQuotactlFd = 443 // quotactl_fd(2), Linux 5.14+
)

type fsxattr struct {
	Xflags     uint32
	Extsize    uint32
	Nextents   uint32
	Projid     uint32
	Cowextsize uint32
	Pad        [8]byte
}

// ifDqblk is struct if_dqblk; limits are in 1 KiB blocks, usage in bytes.
type ifDqblk struct {
	BHardLimit uint64
	BSoftLimit uint64
	CurSpace   uint64
	IHardLimit uint64
	ISoftLimit uint64
	CurInodes  uint64
	BTime      uint64
	ITime      uint64
	Valid      uint32
	_          uint32
}

// fsDiskQuota is struct fs_disk_quota; block figures are in 512-byte units.
type fsDiskQuota struct {
	Version      int8
	Flags        int8
	FieldMask    uint16
	ID           uint32
	BlkHardLimit uint64
	BlkSoftLimit uint64
	InoHardLimit uint64
	InoSoftLimit uint64
	BCount       uint64
	ICount       uint64
	ITimer       int32
	BTimer       int32
	IWarns       uint16
	BWarns       uint16
	ITimerHi     int8
	BTimerHi     int8
	RtbTimerHi   int8
	Padding2     int8
	RtbHardLimit uint64
	RtbSoftLimit uint64
	RtbCount     uint64
	RtbTimer     int32
	RtbWarns     uint16
	Padding3     int16
	Padding4     [8]byte
}

// kernelQuota is the Quotas of the running kernel: fsxattr ioctls and
// quotactl, XFS's own commands on XFS and the generic ones elsewhere (ext4
// with the project feature and prjquota).
type kernelQuota struct {
	mu      sync.Mutex
	devices map[uint64]string // st_dev -> block device, for quotactl without _fd
}

func newKernelQuota() *kernelQuota { return &kernelQuota{devices: map[uint64]string{}} }

func (k *kernelQuota) Project(fd int) (uint32, bool, error) {
	var x fsxattr
	if err := ioctlPtr(fd, fsIocFsGetXattr, unsafe.Pointer(&x)); err != nil {
		return 0, false, fmt.Errorf("FS_IOC_FSGETXATTR: %w", err)
	}
	return x.Projid, x.Xflags&fsXflagProjInherit != 0, nil
}

func (k *kernelQuota) SetProject(fd int, id uint32, inherit bool) error {
	var x fsxattr
	if err := ioctlPtr(fd, fsIocFsGetXattr, unsafe.Pointer(&x)); err != nil {
		return fmt.Errorf("FS_IOC_FSGETXATTR: %w", err)
	}
	x.Projid = id
	if inherit {
		x.Xflags |= fsXflagProjInherit
	} else {
		x.Xflags &^= fsXflagProjInherit
	}
	if err := ioctlPtr(fd, fsIocFsSetXattr, unsafe.Pointer(&x)); err != nil {
		return fmt.Errorf("FS_IOC_FSSETXATTR project %d: %w", id, err)
	}
	return nil
}

func (k *kernelQuota) Get(fd int, id uint32) (Quota, error) {
	xfs, err := isXFS(fd)
	if err != nil {
		return Quota{}, err
	}
	if xfs {
		var d fsDiskQuota
		if err := k.quotactl(fd, qXGetQuota, id, unsafe.Pointer(&d)); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return Quota{}, nil // no dquot yet: nothing charged, no limit
			}
			return Quota{}, fmt.Errorf("quotactl Q_XGETQUOTA project %d: %w", id, err)
		}
		return Quota{LimitBytes: int64(d.BlkHardLimit) * 512, UsedBytes: int64(d.BCount) * 512, UsedInodes: int64(d.ICount)}, nil
	}
	var d ifDqblk
	if err := k.quotactl(fd, qGetQuota, id, unsafe.Pointer(&d)); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return Quota{}, nil
		}
		return Quota{}, fmt.Errorf("quotactl Q_GETQUOTA project %d: %w", id, err)
	}
	return Quota{LimitBytes: int64(d.BHardLimit) * 1024, UsedBytes: int64(d.CurSpace), UsedInodes: int64(d.CurInodes)}, nil
}

func (k *kernelQuota) SetLimit(fd int, id uint32, bytes int64) error {
	xfs, err := isXFS(fd)
	if err != nil {
		return err
	}
	if xfs {
		bb := uint64((bytes + 511) / 512)
		d := fsDiskQuota{Version: fsDquotVersion, Flags: fsProjQuota, FieldMask: fsDqBHard | fsDqBSoft, ID: id, BlkHardLimit: bb}
		if err := k.quotactl(fd, qXSetQLim, id, unsafe.Pointer(&d)); err != nil {
			return fmt.Errorf("quotactl Q_XSETQLIM project %d to %d bytes: %w", id, bytes, err)
		}
		return nil
	}
	d := ifDqblk{BHardLimit: uint64((bytes + 1023) / 1024), Valid: qifLimits}
	if err := k.quotactl(fd, qSetQuota, id, unsafe.Pointer(&d)); err != nil {
		return fmt.Errorf("quotactl Q_SETQUOTA project %d to %d bytes: %w", id, bytes, err)
	}
	return nil
}

func isXFS(fd int) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return false, fmt.Errorf("fstatfs: %w", err)
	}
	switch st.Type {
	case xfsSuperMagic:
		return true, nil
	case ext4SuperMagic:
		return false, nil
	}
	return false, fmt.Errorf("file system type %#x has no project quotas the agent knows (XFS or ext4 with prjquota): %w", st.Type, ErrNoQuota)
}

// ErrNoQuota reports a file system, or a mount, without project quotas.
var ErrNoQuota = errors.New("project quotas are not available")

// quotactl runs a project-quota command on the file system of fd: with
// quotactl_fd(2) where the kernel has it, otherwise with quotactl(2) on the
// block device that mountinfo names for fd's st_dev.
func (k *kernelQuota) quotactl(fd int, sub int, id uint32, addr unsafe.Pointer) error {
	cmd := uintptr(sub<<8 | prjQuota)
	_, _, e := unix.Syscall6(sysQuotactlFd, uintptr(fd), cmd, uintptr(id), uintptr(addr), 0, 0)
	if e != unix.ENOSYS {
		return quotaErr(e)
	}
	dev, err := k.device(fd)
	if err != nil {
		return err
	}
	p, err := unix.BytePtrFromString(dev)
	if err != nil {
		return err
	}
	_, _, e = unix.Syscall6(unix.SYS_QUOTACTL, cmd, uintptr(unsafe.Pointer(p)), uintptr(id), uintptr(addr), 0, 0)
	return quotaErr(e)
}

func quotaErr(e unix.Errno) error {
	switch e {
	case 0:
		return nil
	case unix.ESRCH, unix.ENOTSUP:
		// ESRCH: quotas are not turned on for this type (no prjquota mount option).
		return fmt.Errorf("%w (mount the file system with -o prjquota): %v", ErrNoQuota, e)
	}
	return e
}

func (k *kernelQuota) device(fd int) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if d, ok := k.devices[st.Dev]; ok {
		return d, nil
	}
	major, minor := unix.Major(st.Dev), unix.Minor(st.Dev)
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (bool, bool) {
		return m.Major != int(major) || m.Minor != int(minor), false
	})
	if err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	if len(mounts) == 0 {
		return "", fmt.Errorf("no mount of device %d:%d in mountinfo", major, minor)
	}
	k.devices[st.Dev] = mounts[0].Source
	return mounts[0].Source, nil
}

func ioctlPtr(fd int, req uint, p unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(p))
	if e != 0 {
		return e
	}
	return nil
}

// ProjectOf returns the project ID and inherit flag of the directory at
// path, as the agent sees them (for admins' checks and tests).
func ProjectOf(path string) (uint32, bool, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false, err
	}
	defer unix.Close(fd)
	return newKernelQuota().Project(fd)
}

// QuotaOf returns project id's quota on the file system holding path.
func QuotaOf(path string, id uint32) (Quota, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Quota{}, err
	}
	defer unix.Close(fd)
	return newKernelQuota().Get(fd, id)
}
