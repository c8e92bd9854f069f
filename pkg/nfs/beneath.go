package nfs

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Everything below walks a validated relative path one component at a time
// with openat(O_NOFOLLOW|O_DIRECTORY) from a directory fd, so a symlink that a
// volume's user planted anywhere on the path makes the call fail instead of
// leading it outside the share. Validation already rejected "..".

const dirOpenFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// ErrSymlink reports a path component that is a symlink or not a directory.
var ErrSymlink = errors.New("is a symlink or not a directory; refusing to follow it")

func openDirAt(dirFd int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirFd, name, dirOpenFlags, 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ELOOP || err == unix.ENOTDIR {
			return -1, fmt.Errorf("%q %w", name, ErrSymlink)
		}
		return fd, err
	}
}

// closeUnlessRoot closes fd if it is not the share root's fd, which the
// walks below start from without dup(2)ing it: under user-mode Linux every
// system call is expensive, and the walks run for every volume.
func closeUnlessRoot(fd, rootFd int) {
	if fd != rootFd {
		unix.Close(fd)
	}
}

// OpenBeneath opens the directory rel (a validated relative path) under the
// directory rootFd without following symlinks. The caller closes the fd.
func OpenBeneath(rootFd int, rel string) (int, error) {
	if rel == "" {
		return unix.Dup(rootFd)
	}
	fd := rootFd
	for _, c := range strings.Split(rel, "/") {
		next, err := openDirAt(fd, c)
		closeUnlessRoot(fd, rootFd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// MkdirAllBeneath creates rel and any missing parents under rootFd without
// following symlinks, and returns an fd of the final directory together with
// the components it created (so that DeleteVolume and crash recovery know
// which parents the template made). Existing directories are accepted.
func MkdirAllBeneath(rootFd int, rel string, mode uint32) (fd int, created []string, err error) {
	return mkdirAllBeneath(rootFd, rel, mode, true)
}

// MkdirAllBeneathNoFd is MkdirAllBeneath for callers that need no fd of the
// final directory. A final directory it just created is not opened again,
// which saves a round trip per volume; one that already existed is still
// opened, to refuse a symlink there.
func MkdirAllBeneathNoFd(rootFd int, rel string, mode uint32) (created []string, err error) {
	_, created, err = mkdirAllBeneath(rootFd, rel, mode, false)
	return created, err
}

func mkdirAllBeneath(rootFd int, rel string, mode uint32, wantFd bool) (fd int, created []string, err error) {
	return mkdirFrom(rootFd, rootFd, strings.Split(rel, "/"), 0, mode, wantFd)
}

// mkdirFrom is mkdirAllBeneath from the directory fd of parts[:from] (an fd
// of openExisting, which it takes over), for the components from on.
func mkdirFrom(rootFd, fd int, parts []string, from int, mode uint32, wantFd bool) (int, []string, error) {
	var created []string
	if from == len(parts) {
		// Everything exists; fd is the final directory, opened by openExisting.
		if !wantFd {
			closeUnlessRoot(fd, rootFd)
			return -1, nil, nil
		}
		return fd, nil, nil
	}
	for i := from; i < len(parts); i++ {
		c := parts[i]
		last := i == len(parts)-1
		err := unix.Mkdirat(fd, c, mode)
		switch {
		case err == nil:
			created = append(created, strings.Join(parts[:i+1], "/"))
			if last && !wantFd {
				closeUnlessRoot(fd, rootFd)
				return -1, created, nil
			}
		case err == unix.EEXIST:
		default:
			closeUnlessRoot(fd, rootFd)
			return -1, created, fmt.Errorf("mkdir %q: %w", strings.Join(parts[:i+1], "/"), err)
		}
		next, err := openDirAt(fd, c)
		closeUnlessRoot(fd, rootFd)
		if err != nil {
			return -1, created, fmt.Errorf("open %q: %w", strings.Join(parts[:i+1], "/"), err)
		}
		fd = next
	}
	// rel has at least one component, so fd is a directory this walk opened.
	if !wantFd {
		unix.Close(fd)
		return -1, created, nil
	}
	return fd, created, nil
}

// sillyRenamePrefix and sillyRenameHexDigits are the Linux NFS client's
// silly-rename pattern: nfs_sillyrename names an open, unlinked file
// ".nfs" + 16 hex digits of the file ID + 8 hex digits of a counter (%llx, %x:
// lowercase).
const (
	sillyRenamePrefix    = ".nfs"
	sillyRenameHexDigits = 24
)

// isSillyRename reports whether name is exactly a silly-renamed file, so that
// a user's own .nfsrc is deleted like any other file instead of being taken
// for an open one and blocking the deletion forever.
func isSillyRename(name string) bool {
	hex, ok := strings.CutPrefix(name, sillyRenamePrefix)
	if !ok || len(hex) != sillyRenameHexDigits {
		return false
	}
	for _, c := range hex {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ErrBusy reports files that another NFS client still holds open.
var ErrBusy = errors.New("files are still open on another NFS client")

// BusyError lists the silly-renamed files (.nfsXXXX) that kept a directory
// from being removed.
type BusyError struct{ Files []string }

func (e *BusyError) Error() string {
	return fmt.Sprintf("%v: %s", ErrBusy, strings.Join(e.Files, ", "))
}

// Unwrap lets errors.Is(err, ErrBusy) match.
func (e *BusyError) Unwrap() error { return ErrBusy }

// RemoveTreeAt removes name, a directory entry of dirFd, with everything
// below it, never following symlinks (a symlink is unlinked, not entered).
// Silly-renamed files (.nfs + 24 hex digits) are open on some NFS client; they are left in place and
// reported as a *BusyError after everything else is gone, so a retry can
// finish the job and nothing is reported as deleted while it is not.
// A missing name is not an error.
func RemoveTreeAt(dirFd int, name string) error {
	_, err := removeTree(dirFd, name, name, nil)
	return err
}

// removeTree is RemoveTreeAt that leaves in place every directory below name
// for which keep (given its path as rel + "/...") says so, and the
// directories on the way to it; it returns the kept paths. keep may be nil.
func removeTree(dirFd int, name, rel string, keep func(rel string) (bool, error)) (kept []string, err error) {
	// Most volumes are deleted empty or small; try the cheap call first.
	err = unix.Unlinkat(dirFd, name, unix.AT_REMOVEDIR)
	switch err {
	case nil, unix.ENOENT:
		return nil, nil
	case unix.ENOTDIR:
		err := unix.Unlinkat(dirFd, name, 0)
		if err == nil || err == unix.ENOENT {
			return nil, nil
		}
		if err != unix.EISDIR {
			return nil, fmt.Errorf("unlink %q: %w", name, err)
		}
		// The server says "not a directory", the client's cached entry says
		// "directory": it was swapped on the server. The O_NOFOLLOW open in
		// removeContents revalidates the entry and handles what it really is.
	case unix.ENOTEMPTY, unix.EEXIST:
	default:
		return nil, fmt.Errorf("rmdir %q: %w", name, err)
	}
	w := treeRemoval{keep: keep}
	if err := w.removeContents(dirFd, name, rel); err != nil {
		return w.kept, err
	}
	if len(w.busy) > 0 {
		return w.kept, &BusyError{Files: w.busy}
	}
	if len(w.kept) > 0 {
		return w.kept, nil
	}
	if err := w.rmdirEmptied(dirFd, name, name); err != nil {
		return w.kept, err
	}
	if len(w.busy) > 0 {
		return w.kept, &BusyError{Files: w.busy}
	}
	return w.kept, nil
}

// rmdirEmptied removes the directory name of parentFd (shown as display),
// which removeContents has just emptied. An NFS client that still holds a
// file open renames it to .nfsXXXX when it is unlinked (silly rename), even
// when the unlink is this process's own: the unlink succeeded, and the
// entry is back under another name, so the rmdir fails with ENOTEMPTY. Then
// the directory is scanned once more: a silly-renamed file is reported in
// w.busy (the directory stays, and a retry succeeds once the client has let
// go), and whatever else appeared meanwhile is removed, then the rmdir is
// tried again.
func (w *treeRemoval) rmdirEmptied(parentFd int, name, display string) error {
	if beforeEmptiedRmdir != nil {
		beforeEmptiedRmdir(parentFd, name)
	}
	err := unix.Unlinkat(parentFd, name, unix.AT_REMOVEDIR)
	switch err {
	case nil, unix.ENOENT:
		return nil
	case unix.ENOTEMPTY, unix.EEXIST:
	default:
		return fmt.Errorf("rmdir %q: %w", display, err)
	}
	left := len(w.busy) + len(w.kept)
	if err := w.removeContents(parentFd, name, display); err != nil {
		return err
	}
	if len(w.busy)+len(w.kept) > left {
		return nil
	}
	if err := unix.Unlinkat(parentFd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return fmt.Errorf("rmdir %q: %w", display, err)
	}
	return nil
}

// beforeEmptiedRmdir, when set (by tests), runs just before the rmdir of a
// directory that removeTree has emptied: where an NFS client's silly rename
// puts an entry back.
var beforeEmptiedRmdir func(parentFd int, name string)

// treeRemoval is one removeTree walk: what it had to leave, and why.
type treeRemoval struct {
	keep func(rel string) (bool, error)
	busy []string // silly-renamed files, open on some client
	kept []string // directories keep asked for
}

// removeContents empties the directory name of parentFd, whose path is
// display. It reports through w what it left, and whether anything of this
// directory had to stay.
func (w *treeRemoval) removeContents(parentFd int, name, display string) error {
	fd, err := openDirAt(parentFd, name)
	if err != nil {
		if errors.Is(err, ErrSymlink) {
			return ignoreNotExist(unix.Unlinkat(parentFd, name, 0))
		}
		return ignoreNotExist(err)
	}
	dir := os.NewFile(uintptr(fd), display)
	defer dir.Close()
	for {
		entries, err := dir.ReadDir(256)
		for _, e := range entries {
			child := display + "/" + e.Name()
			if !e.IsDir() {
				if isSillyRename(e.Name()) {
					w.busy = append(w.busy, child)
					continue
				}
				err := unix.Unlinkat(fd, e.Name(), 0)
				if err == nil || err == unix.ENOENT {
					continue
				}
				if err != unix.EISDIR {
					return fmt.Errorf("unlink %q: %w", child, err)
				}
				// It became a directory since ReadDir: remove it as one.
			}
			if w.keep != nil {
				keep, err := w.keep(child)
				if err != nil {
					return err
				}
				if keep {
					w.kept = append(w.kept, child)
					continue
				}
			}
			left := len(w.busy) + len(w.kept)
			if err := w.removeContents(fd, e.Name(), child); err != nil {
				return err
			}
			if len(w.busy)+len(w.kept) == left {
				if err := w.rmdirEmptied(fd, e.Name(), child); err != nil {
					return err
				}
			}
		}
		if err != nil || len(entries) == 0 {
			break
		}
	}
	return nil
}

// ExistingDepth counts how many leading components of rel exist, as real
// directories reached without symlinks. A symlink on the way is an error.
func ExistingDepth(rootFd int, rel string) (int, error) {
	fd, n, err := openExisting(rootFd, rel)
	if err == nil {
		closeUnlessRoot(fd, rootFd)
	}
	return n, err
}

// openExisting opens the leading components of rel that exist, as real
// directories reached without symlinks, and returns how many there are and
// an fd of the deepest one (rootFd itself when there is none: close it with
// closeUnlessRoot). A symlink on the way is an error. Provision looks first
// and makes the rest from this fd later, so the walk is not made twice.
func openExisting(rootFd int, rel string) (fd, n int, err error) {
	fd = rootFd
	parts := strings.Split(rel, "/")
	for _, c := range parts {
		next, err := openDirAt(fd, c)
		if errors.Is(err, unix.ENOENT) {
			return fd, n, nil
		}
		closeUnlessRoot(fd, rootFd)
		if err != nil {
			return -1, n, fmt.Errorf("open %q: %w", strings.Join(parts[:n+1], "/"), err)
		}
		fd = next
		n++
	}
	return fd, n, nil
}

// RemoveEmptyParents removes the parents of rel from the deepest up, as long
// as they are empty and owned(parent) says the driver created them. It stops
// at the first parent that is not empty or not the driver's, and never
// reaches the share root. removed is called after each removal.
func RemoveEmptyParents(rootFd int, rel string, owned func(dir string) (bool, error), removed func(dir string) error) error {
	for {
		i := strings.LastIndexByte(rel, '/')
		if i < 0 {
			return nil
		}
		rel = rel[:i]
		if ok, err := owned(rel); err != nil || !ok {
			return err
		}
		if gone, err := removeEmptyDir(rootFd, rel); err != nil || !gone {
			return err
		}
		if err := removed(rel); err != nil {
			return err
		}
	}
}

// removeEmptyDir removes the directory rel if it is empty, and reports
// whether it is gone; a directory that is not empty (or is busy) stays, and
// is not an error.
func removeEmptyDir(rootFd int, rel string) (gone bool, err error) {
	parent, base := splitParent(rel)
	pfd, err := openParent(rootFd, parent)
	if err != nil {
		return false, ignoreNotExist(err)
	}
	err = unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR)
	closeUnlessRoot(pfd, rootFd)
	switch err {
	case nil, unix.ENOENT:
		return true, nil
	case unix.ENOTEMPTY, unix.EEXIST, unix.EBUSY:
		return false, nil
	default:
		return false, fmt.Errorf("rmdir %q: %w", rel, err)
	}
}

// splitParent splits "a/b/c" into "a/b" and "c", and "c" into "" and "c".
func splitParent(rel string) (string, string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return "", rel
}

func ignoreNotExist(err error) error {
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}
