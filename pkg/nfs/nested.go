package nfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Nested volumes. Two StorageClasses on one share with subDirs "ns" and
// "ns/${pvc.metadata.name}" put one volume inside another, and deleting
// either then destroyed the other's data. CreateVolume refuses a subDir that
// is an ancestor or a descendant of another volume's, in either order of
// creation, and Dispose never removes a directory that has a record.
//
// Ancestors are cheap to check: one record lookup per leading component.
// Descendants are found through markers beside the records: a volume writes,
// for each of its ancestors P, a flag "has-<key(P)>" (never removed, so that
// its absence proves that no volume was ever created below P) and a pair
// marker "sub-<key(P)>-<key(subDir)>" whose target is its subDir relative to
// P, so that it stays under the 1,024-byte symlink limit of XFS (removed
// with the volume). Each side writes its own record and markers before it
// looks for the other's, so of two racing creates at least one sees the
// other. Volumes created before the markers existed sit in directories: when
// the new volume's directory already exists, it is searched for directories
// that have records. A volume whose own mkdir made its directory has nothing
// below it and skips the descendant lookup (see checkAppeared for why that
// stays safe against a racing inner create).

// ErrNested is the conflict of a subDir with the directory of another volume
// that contains it or lies inside it.
var ErrNested = errors.New("nested volumes")

// NestedError names the other volume and its directory.
type NestedError struct {
	Volume Volume // the volume being created
	// Other is the record of the other volume, OtherDir its subDir.
	Other    Record
	OtherDir string
	// Inside is true when Volume would lie inside OtherDir, false when OtherDir
	// lies inside Volume's directory.
	Inside bool
}

func (e *NestedError) Error() string {
	rel := "would contain the directory %s of volume %q (%s)"
	if e.Inside {
		rel = "would lie inside the directory %s of volume %q (%s)"
	}
	return fmt.Sprintf("%v: subDir %s on %s "+rel+"; deleting either volume would delete the other's data. "+
		"Give the StorageClasses that share this export subDir templates that cannot nest, for example "+
		"${pvc.metadata.namespace}/${pvc.metadata.name} in every class, or a different first component per class",
		ErrNested, e.Volume.SubDir, e.Volume.ShareSource(), e.OtherDir, e.Other.Name, e.Other.VolumeID)
}

func (e *NestedError) Unwrap() error { return ErrNested }

func hasDescendantsKey(dir string) string { return "has-" + recordKey(dir) }

func descendantKey(ancestor, subDir string) string {
	return "sub-" + recordKey(ancestor) + "-" + recordKey(subDir)
}

// ancestors lists the proper leading paths of subDir: "a", "a/b" for "a/b/c".
func ancestors(subDir string) []string {
	var out []string
	for i := range len(subDir) {
		if subDir[i] == '/' {
			out = append(out, subDir[:i])
		}
	}
	return out
}

// markNested writes vol's descendant markers under each of its ancestors.
// known, when not nil, holds the has- flags already known to exist, which
// are never removed: they are not written again.
func markNested(recFd int, subDir string, known *sync.Map) error {
	for _, p := range ancestors(subDir) {
		for _, m := range []struct{ name, target string }{
			{hasDescendantsKey(p), p},
			{descendantKey(p, subDir), subDir[len(p)+1:]},
		} {
			isFlag := m.target == p
			if isFlag && known != nil {
				if _, ok := known.Load(m.name); ok {
					continue
				}
			}
			if err := unix.Symlinkat(m.target, recFd, m.name); err != nil && err != unix.EEXIST {
				return fmt.Errorf("write marker %s/%s for %q: %w", RecordDir, m.name, subDir, err)
			}
			if isFlag && known != nil {
				known.Store(m.name, true)
			}
		}
	}
	return nil
}

// unmarkNested removes vol's pair markers; the flags stay.
func unmarkNested(recFd int, subDir string) error {
	for _, p := range ancestors(subDir) {
		name := descendantKey(p, subDir)
		if err := unix.Unlinkat(recFd, name, 0); err != nil && err != unix.ENOENT {
			return fmt.Errorf("remove marker %s/%s for %q: %w", RecordDir, name, subDir, err)
		}
	}
	return nil
}

// checkAncestors returns a *NestedError when one of dirs, leading paths of
// vol.SubDir, has a live record. Call it after vol's record and markers are
// written.
func checkAncestors(recFd int, vol Volume, dirs []string) error {
	for _, p := range dirs {
		rec, ok, err := ReadRecord(recFd, p)
		if err != nil {
			return err
		}
		if ok && rec.live() {
			return &NestedError{Volume: vol, Other: rec, OtherDir: p, Inside: true}
		}
	}
	return nil
}

// checkAppeared finishes the nesting checks once Provision's mkdir walk is
// done, for what changed since its first look (depth leading components of
// vol.SubDir existed then; existed says whether all of them did, and the
// volume's directory was checked for descendants before the walk).
//
// A volume whose directory this call made (it is in created) has nothing
// below it, and the descendant lookup is skipped, the common case's only
// nesting cost. That is safe against an inner volume created at the same
// time by another replica because of the order of both sides: this volume's
// record is written before its mkdir, and the inner volume, which must find
// the directory existing (this call made it), either saw it already in its
// own first look, and read this record after that, or sees it appear now, as
// an EEXIST of an ancestor it saw missing, and reads this record here. Either
// way the inner one reads this record after it was written and refuses.
func checkAppeared(sh *Share, recFd int, vol Volume, depth int, existed bool, created []string) error {
	var appeared []string
	for i, p := range ancestors(vol.SubDir) {
		if i >= depth && !slices.Contains(created, p) {
			appeared = append(appeared, p)
		}
	}
	if err := checkAncestors(recFd, vol, appeared); err != nil {
		return err
	}
	if existed || slices.Contains(created, vol.SubDir) {
		return nil
	}
	// Made by someone else since the first look.
	return checkDescendants(sh, recFd, vol, false)
}

// removeCreated removes again the directories a refused Provision made
// for subDir (created, from MkdirAllBeneath, outermost first) and their
// parent markers, deepest first. A directory that is no longer empty stays,
// with everything above it: something else uses it now.
func removeCreated(rootFd, recFd int, subDir string, created []string) error {
	for i := len(created) - 1; i >= 0; i-- {
		if gone, err := removeEmptyDir(rootFd, created[i]); err != nil || !gone {
			return err
		}
		if created[i] != subDir {
			if err := DeleteParentMarker(recFd, created[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkDescendants is the half of checkNested that looks below vol.
func checkDescendants(sh *Share, recFd int, vol Volume, searchDir bool) error {
	var st unix.Stat_t
	err := unix.Fstatat(recFd, hasDescendantsKey(vol.SubDir), &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT && !searchDir {
		return nil
	}
	if err != nil && err != unix.ENOENT {
		return fmt.Errorf("look up marker %s/%s for %q: %w", RecordDir, hasDescendantsKey(vol.SubDir), vol.SubDir, err)
	}
	names, err := recordNames(recFd)
	if err != nil {
		return err
	}
	prefix := "sub-" + recordKey(vol.SubDir) + "-"
	for name := range names {
		key, ok := strings.CutPrefix(name, prefix)
		if !ok || !names[key] {
			continue
		}
		rel, err := readLink(recFd, name)
		if err != nil {
			return err
		}
		if err := nestedRecord(recFd, vol, vol.SubDir+"/"+rel); err != nil {
			return err
		}
	}
	if !searchDir {
		return nil
	}
	// Volumes created before the markers existed.
	return walkDirs(sh.RootFd(), vol.SubDir, func(rel string) (bool, error) {
		if !names[recordKey(rel)] {
			return true, nil
		}
		if err := nestedRecord(recFd, vol, rel); err != nil {
			return false, err
		}
		return true, nil
	})
}

// nestedRecord returns a *NestedError when sub, below vol, has a live record.
func nestedRecord(recFd int, vol Volume, sub string) error {
	rec, ok, err := ReadRecord(recFd, sub)
	if err != nil || !ok || !rec.live() || !strings.HasPrefix(sub, vol.SubDir+"/") {
		return err
	}
	return &NestedError{Volume: vol, Other: rec, OtherDir: sub}
}

// recordNames lists the entries of the records directory.
func recordNames(recFd int) (map[string]bool, error) {
	fd, err := unix.Openat(recFd, ".", dirOpenFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", RecordDir, err)
	}
	dir := os.NewFile(uintptr(fd), RecordDir)
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", RecordDir, err)
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return set, nil
}

func readLink(dirFd int, name string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(dirFd, name, buf)
	if err != nil {
		return "", fmt.Errorf("read %s/%s: %w", RecordDir, name, err)
	}
	return string(buf[:n]), nil
}

// walkDirs calls fn with the share-relative path of every directory below
// rel (not rel itself), without following symlinks; fn returns whether to
// descend into it. Directories that vanish meanwhile are skipped.
func walkDirs(rootFd int, rel string, fn func(rel string) (bool, error)) error {
	fd, err := OpenBeneath(rootFd, rel)
	if err != nil {
		return ignoreNotExist(err)
	}
	return walkDirsFd(fd, rel, fn)
}

func walkDirsFd(fd int, rel string, fn func(rel string) (bool, error)) error {
	dir := os.NewFile(uintptr(fd), rel)
	defer dir.Close()
	for {
		entries, err := dir.ReadDir(256)
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			child := path.Join(rel, e.Name())
			descend, err := fn(child)
			if err != nil {
				return err
			}
			if !descend {
				continue
			}
			sub, err := openDirAt(fd, e.Name())
			if err != nil {
				if errors.Is(err, unix.ENOENT) || errors.Is(err, ErrSymlink) {
					continue
				}
				return fmt.Errorf("open %q: %w", child, err)
			}
			if err := walkDirsFd(sub, child, fn); err != nil {
				return err
			}
		}
		if err != nil || len(entries) == 0 {
			return nil
		}
	}
}
