package nfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The copy engine behind snapshots, restores and clones. It copies a
// directory tree within one share mount, file by file, with the fastest
// method the server takes:
//
//  1. FICLONE: on an NFSv4.2 mount the client sends CLONE and the server
//     reflinks (XFS with reflink=1, btrfs): metadata only.
//  2. copy_file_range: on NFSv4.2 a COPY that the server does itself, so no
//     data crosses the network (on XFS the server reflinks here too). On
//     NFSv3 the kernel falls back to reading and writing in the client.
//  3. pread/pwrite, streamed; never an archive of the tree.
//
// The first file that a method fails on with "not supported" lowers the
// method for every later file of the same copy, so a share that cannot
// reflink costs one failed ioctl per copy, not one per file.
//
// The walk is the same symlink-proof walk as delete: every entry is opened
// relative to its parent's fd with O_NOFOLLOW, symlinks are copied as
// symlinks and never followed, and a directory that is another volume's
// (CopyOptions.Skip) is not entered.

// CopyMethod names how file data was copied.
type CopyMethod string

// The copy methods, fastest first.
const (
	CopyClone     CopyMethod = "clone"
	CopyRange     CopyMethod = "copy_file_range"
	CopyReadWrite CopyMethod = "read-write"
)

var copyMethods = []CopyMethod{CopyClone, CopyRange, CopyReadWrite}

// ParseCopyMethod accepts the names of the copy methods.
func ParseCopyMethod(s string) (CopyMethod, error) {
	for _, m := range copyMethods {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("copy method %q is not one of clone, copy_file_range, read-write", s)
}

func methodLevel(m CopyMethod) int32 {
	for i, c := range copyMethods {
		if c == m {
			return int32(i)
		}
	}
	return 0
}

// DefaultCopyWorkers is how many files a copy works on at once: over NFS
// each file costs several round trips (create, clone or copy, setattr,
// close), which overlap across files.
const DefaultCopyWorkers = 8

// CopyOptions are CopyTree's choices.
type CopyOptions struct {
	// Fastest is the fastest method tried; empty means CopyClone.
	Fastest CopyMethod
	// Workers is how many files are copied at once; 0 means DefaultCopyWorkers.
	Workers int
	// SrcRel is the source directory's path relative to the share root,
	// passed to Skip and used in messages.
	SrcRel string
	// Skip, when not nil, reports whether a directory below the source
	// (given share-relative) must not be copied: another volume's directory,
	// nested in this one by an earlier driver.
	Skip func(rel string) (bool, error)
}

// CopyResult says what a copy did.
type CopyResult struct {
	// Bytes is the sum of the sizes of the regular files copied (each
	// hard-linked file once).
	Bytes int64
	// Entries counts the entries made in the destination.
	Entries int64
	// Method is the slowest method any file needed.
	Method CopyMethod
	// Skipped lists the directories not copied (share-relative).
	Skipped []string
}

// CopyTree copies the contents of the directory srcFd into the empty
// directory dstFd, and then gives dstFd the owner, mode and timestamps of
// srcFd. It keeps file types, modes, owners, timestamps, sparse holes, hard
// links within the tree and symlinks. Silly-renamed files (.nfsXXXX, open
// but deleted on some client) are not copied. Neither fd is closed.
func CopyTree(ctx context.Context, srcFd, dstFd int, opts CopyOptions) (CopyResult, error) {
	workers := opts.Workers
	if workers <= 0 {
		workers = DefaultCopyWorkers
	}
	fastest := opts.Fastest
	if fastest == "" {
		fastest = CopyClone
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &treeCopy{ctx: ctx, cancel: cancel, opts: opts, dstRoot: dstFd, links: map[[2]uint64]string{}, jobs: make(chan fileJob)}
	c.level.Store(methodLevel(fastest))
	for range workers {
		c.wg.Add(1)
		go c.worker()
	}
	var st unix.Stat_t
	err := unix.Fstat(srcFd, &st)
	if err == nil {
		err = c.copyDir(srcFd, dstFd, "")
	}
	close(c.jobs)
	c.wg.Wait()
	if err == nil {
		err = c.err()
	}
	if err == nil {
		err = setDirAttrs(dstFd, &st)
	}
	res := CopyResult{Bytes: c.bytes.Load(), Entries: c.entries.Load(), Method: copyMethods[c.level.Load()], Skipped: c.skipped}
	if err != nil {
		return res, fmt.Errorf("copy %s: %w", displayRel(opts.SrcRel), err)
	}
	return res, nil
}

func displayRel(rel string) string {
	if rel == "" {
		return "the share root"
	}
	return rel
}

type treeCopy struct {
	ctx     context.Context
	cancel  context.CancelFunc
	opts    CopyOptions
	dstRoot int
	// links maps the (device, inode) of a source file with several links
	// to the destination path (relative to dstRoot) of its first copy.
	links   map[[2]uint64]string
	skipped []string

	jobs    chan fileJob
	wg      sync.WaitGroup
	level   atomic.Int32
	bytes   atomic.Int64
	entries atomic.Int64

	mu       sync.Mutex
	firstErr error
}

type fileJob struct {
	src, dst int
	st       unix.Stat_t
	rel      string
}

func (c *treeCopy) fail(err error) {
	c.mu.Lock()
	if c.firstErr == nil {
		c.firstErr = err
	}
	c.mu.Unlock()
	c.cancel()
}

func (c *treeCopy) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.firstErr != nil {
		return c.firstErr
	}
	return c.ctx.Err()
}

// copyDir copies the entries of srcFd into dstFd; rel is their parent's
// path relative to the copy's roots.
func (c *treeCopy) copyDir(srcFd, dstFd int, rel string) error {
	rfd, err := unix.Openat(srcFd, ".", dirOpenFlags, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", displayRel(rel), err)
	}
	dir := os.NewFile(uintptr(rfd), rel)
	defer dir.Close()
	for {
		names, rerr := dir.Readdirnames(256)
		for _, name := range names {
			if err := c.ctx.Err(); err != nil {
				return c.err()
			}
			if err := c.copyEntry(srcFd, dstFd, name, path.Join(rel, name)); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) || rerr == nil && len(names) == 0 {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("list %s: %w", displayRel(rel), rerr)
		}
	}
}

func (c *treeCopy) copyEntry(srcFd, dstFd int, name, rel string) error {
	if isSillyRename(name) {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstatat(srcFd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil // removed while the copy runs
		}
		return fmt.Errorf("stat %s: %w", rel, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return c.copySubdir(srcFd, dstFd, name, rel)
	case unix.S_IFREG:
		return c.copyFile(srcFd, dstFd, name, rel, &st)
	case unix.S_IFLNK:
		target, err := readLinkAt(srcFd, name)
		if err != nil {
			return ignoreNotExist(err)
		}
		if err := unix.Symlinkat(target, dstFd, name); err != nil {
			return fmt.Errorf("symlink %s: %w", rel, err)
		}
	default: // FIFOs, sockets, device nodes
		if err := unix.Mknodat(dstFd, name, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			return fmt.Errorf("mknod %s: %w", rel, err)
		}
		if err := unix.Fchmodat(dstFd, name, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("chmod %s: %w", rel, err)
		}
	}
	c.entries.Add(1)
	if err := unix.Fchownat(dstFd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %s: %w", rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK && st.Mode&0o6000 != 0 {
		// chown cleared set-user-ID and set-group-ID.
		if err := unix.Fchmodat(dstFd, name, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("chmod %s: %w", rel, err)
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dstFd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", rel, err)
	}
	return nil
}

func (c *treeCopy) copySubdir(srcFd, dstFd int, name, rel string) error {
	if c.opts.Skip != nil {
		skip, err := c.opts.Skip(path.Join(c.opts.SrcRel, rel))
		if err != nil {
			return err
		}
		if skip {
			c.skipped = append(c.skipped, path.Join(c.opts.SrcRel, rel))
			return nil
		}
	}
	sfd, err := openDirAt(srcFd, name)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("open %s: %w", rel, err)
	}
	defer unix.Close(sfd)
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", rel, err)
	}
	if err := unix.Mkdirat(dstFd, name, 0o700); err != nil {
		return fmt.Errorf("mkdir %s: %w", rel, err)
	}
	c.entries.Add(1)
	dfd, err := openDirAt(dstFd, name)
	if err != nil {
		return fmt.Errorf("open %s: %w", rel, err)
	}
	defer unix.Close(dfd)
	if err := c.copyDir(sfd, dfd, rel); err != nil {
		return err
	}
	// Entries made in it changed its times: set them last. Files still
	// being copied by the workers do not change their directory.
	if err := setDirAttrs(dfd, &st); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return nil
}

func setDirAttrs(fd int, st *unix.Stat_t) error {
	if err := unix.Fchown(fd, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, st.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return futimens(fd, st)
}

// futimens is utimensat(fd, NULL, times, 0), which x/sys/unix has no
// wrapper for.
func futimens(fd int, st *unix.Stat_t) error {
	ts := [2]unix.Timespec{st.Atim, st.Mtim}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return fmt.Errorf("set times: %w", e)
	}
	return nil
}

// copyFile creates the destination file (or its hard link) in the walk, so
// that a later link to it finds it, and hands the data to a worker.
func (c *treeCopy) copyFile(srcFd, dstFd int, name, rel string, st *unix.Stat_t) error {
	key := [2]uint64{st.Dev, st.Ino}
	if st.Nlink > 1 {
		if first, ok := c.links[key]; ok {
			if err := unix.Linkat(c.dstRoot, first, dstFd, name, 0); err != nil {
				return fmt.Errorf("link %s to %s: %w", rel, first, err)
			}
			c.entries.Add(1)
			return nil
		}
	}
	// O_NONBLOCK: an entry swapped for a FIFO since the stat must not block
	// the open; it is refused below.
	sfd, err := unix.Openat(srcFd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return fmt.Errorf("open %s: %w", rel, err)
	}
	if err := unix.Fstat(sfd, st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(sfd)
		if err == nil {
			err = ErrSymlink
		}
		return fmt.Errorf("%s changed while it was copied: %w", rel, err)
	}
	dfd, err := unix.Openat(dstFd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		unix.Close(sfd)
		return fmt.Errorf("create %s: %w", rel, err)
	}
	c.entries.Add(1)
	if st.Nlink > 1 {
		c.links[key] = rel
	}
	select {
	case c.jobs <- fileJob{src: sfd, dst: dfd, st: *st, rel: rel}:
		return nil
	case <-c.ctx.Done():
		unix.Close(sfd)
		unix.Close(dfd)
		return c.err()
	}
}

func (c *treeCopy) worker() {
	defer c.wg.Done()
	var buf []byte
	for j := range c.jobs {
		err := c.ctx.Err()
		if err == nil {
			err = c.copyFileData(j, &buf)
		}
		unix.Close(j.src)
		if cerr := unix.Close(j.dst); err == nil && cerr != nil {
			// NFS reports a failed write (ENOSPC, EDQUOT) at close.
			err = fmt.Errorf("close %s: %w", j.rel, cerr)
		}
		if err != nil {
			c.fail(err)
		}
	}
}

func (c *treeCopy) copyFileData(j fileJob, buf *[]byte) error {
	if err := c.copyData(j.src, j.dst, j.st.Size, j.st.Blocks*512 < j.st.Size, buf); err != nil {
		return fmt.Errorf("copy data of %s: %w", j.rel, err)
	}
	c.bytes.Add(j.st.Size)
	if err := unix.Fchown(j.dst, int(j.st.Uid), int(j.st.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", j.rel, err)
	}
	if err := unix.Fchmod(j.dst, j.st.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod %s: %w", j.rel, err)
	}
	if err := futimens(j.dst, &j.st); err != nil {
		return fmt.Errorf("%s: %w", j.rel, err)
	}
	return nil
}

// unsupported reports errors that mean "this method does not work here":
// the file system, the NFS version or the server lacks it.
func unsupported(err error) bool {
	switch err {
	case unix.EOPNOTSUPP, unix.ENOTTY, unix.ENOSYS, unix.EXDEV, unix.EINVAL:
		return true
	}
	return false
}

// lower moves the copy to the next slower method after from failed.
func (c *treeCopy) lower(from int32) { c.level.CompareAndSwap(from, from+1) }

// copyData copies size bytes from src to dst, keeping holes. sparse says
// that src has fewer blocks than bytes.
func (c *treeCopy) copyData(src, dst int, size int64, sparse bool, buf *[]byte) error {
	if size == 0 {
		return nil
	}
	if lvl := c.level.Load(); lvl == 0 {
		err := unix.IoctlFileClone(dst, src)
		if err == nil {
			return nil
		}
		if !unsupported(err) {
			return fmt.Errorf("FICLONE: %w", err)
		}
		c.lower(0)
	}
	for off := int64(0); off < size; {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		data, end := off, size // without SEEK_DATA: all data
		if !seekBlind {
			d, err := unix.Seek(src, off, unix.SEEK_DATA)
			if err == unix.ENXIO {
				break // the rest is a hole
			}
			if err == nil {
				data = d
			}
			if e, err := unix.Seek(src, data, unix.SEEK_HOLE); err == nil && e <= size {
				end = e
			}
		}
		if end <= data {
			break
		}
		if sparse && data == 0 && end == size {
			// A sparse file whose holes SEEK_HOLE cannot see: NFSv3 and
			// NFSv4.0/4.1 have no SEEK, and the kernel's copy_file_range
			// fallback there would write the holes out as zeros.
			return c.copySkippingZeros(src, dst, size, buf)
		}
		if err := c.copySegment(src, dst, data, end, buf); err != nil {
			return err
		}
		off = end
	}
	// Holes at the end, and a file that shrank while it was read.
	return unix.Ftruncate(dst, size)
}

func (c *treeCopy) copySegment(src, dst int, off, end int64, buf *[]byte) error {
	if c.level.Load() <= 1 {
		roff, woff := off, off
		for roff < end {
			n, err := unix.CopyFileRange(src, &roff, dst, &woff, int(min(end-roff, 1<<30)), 0)
			if err != nil {
				if !unsupported(err) {
					return fmt.Errorf("copy_file_range: %w", err)
				}
				c.lower(1)
				break
			}
			if n == 0 {
				return nil // the file shrank
			}
		}
		if roff >= end {
			return nil
		}
		off = roff
	}
	if *buf == nil {
		*buf = make([]byte, 1<<20)
	}
	for off < end {
		n, err := unix.Pread(src, (*buf)[:min(int64(len(*buf)), end-off)], off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			return nil
		}
		for w := 0; w < n; {
			m, err := unix.Pwrite(dst, (*buf)[w:n], off+int64(w))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("write: %w", err)
			}
			w += m
		}
		off += int64(n)
	}
	return nil
}

// seekBlind makes copyData ignore SEEK_DATA and SEEK_HOLE, as over NFS
// versions without SEEK, where the whole file looks like data; for tests.
var seekBlind bool

// zeroBlock is the granularity at which copySkippingZeros leaves holes.
const zeroBlock = 64 << 10

var zeros = make([]byte, zeroBlock)

// copySkippingZeros reads src and writes only the blocks of dst that are
// not all zeros, leaving holes for the rest, like cp --sparse=auto.
func (c *treeCopy) copySkippingZeros(src, dst int, size int64, buf *[]byte) error {
	if *buf == nil {
		*buf = make([]byte, 1<<20)
	}
	for off := int64(0); off < size; {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		n, err := unix.Pread(src, (*buf)[:min(int64(len(*buf)), size-off)], off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			break
		}
		for b := 0; b < n; b += zeroBlock {
			chunk := (*buf)[b:min(b+zeroBlock, n)]
			if bytes.Equal(chunk, zeros[:len(chunk)]) {
				continue
			}
			for w := 0; w < len(chunk); {
				m, err := unix.Pwrite(dst, chunk[w:], off+int64(b+w))
				if err == unix.EINTR {
					continue
				}
				if err != nil {
					return fmt.Errorf("write: %w", err)
				}
				w += m
			}
		}
		off += int64(n)
	}
	return unix.Ftruncate(dst, size)
}

func readLinkAt(dirFd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirFd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
