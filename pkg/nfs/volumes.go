package nfs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Provision makes vol's directory on the share and records it as rec.
//
// The record is claimed first, with an exclusive symlink, and the directory
// made second: two controllers racing for one subdirectory cannot both win,
// and a crash between the two steps leaves a record whose retry finishes the
// directory. When a record already exists, compatible decides whether it is
// this same volume (a retry: the directory is made sure of and the stored
// record returned) or a conflict (its error is returned with the stored record).
// A directory that existed before is adopted, never deleted later; parents
// that the driver creates get a marker, so that only they are removed with
// their last volume. perm, when not nil, is applied to the volume directory
// with fchmod, so the process umask does not matter.
func Provision(sh *Share, vol Volume, rec Record, perm *uint32, compatible func(stored Record) error) (Record, error) {
	if vol.SubDir == "" {
		return Record{}, fmt.Errorf("volume %s: refusing to provision the share root of %s", vol.ID(), vol.ShareSource())
	}
	recFd, err := sh.RecordDirFd()
	if err != nil {
		return Record{}, err
	}
	depth, err := ExistingDepth(sh.RootFd(), vol.SubDir)
	if err != nil {
		return Record{}, fmt.Errorf("volume %s: %s on %s: %w", vol.ID(), vol.SubDir, vol.ShareSource(), err)
	}
	rec.Version = 1
	rec.Adopted = depth == len(strings.Split(vol.SubDir, "/"))
	stored := rec
	switch err := CreateRecord(recFd, vol.SubDir, rec); {
	case errors.Is(err, ErrRecordExists):
		var ok bool
		stored, ok, err = ReadRecord(recFd, vol.SubDir)
		if err != nil {
			return Record{}, err
		}
		if !ok {
			return Record{}, fmt.Errorf("volume %s: the record of %s vanished while it was read; retry", vol.ID(), vol.SubDir)
		}
		if err := compatible(stored); err != nil {
			return stored, err
		}
	case err != nil:
		return Record{}, err
	}
	var fd int
	var created []string
	if perm != nil {
		fd, created, err = MkdirAllBeneath(sh.RootFd(), vol.SubDir, 0o777)
	} else {
		fd = -1
		created, err = MkdirAllBeneathNoFd(sh.RootFd(), vol.SubDir, 0o777)
	}
	for _, dir := range created {
		if dir == vol.SubDir {
			continue
		}
		if merr := CreateParentMarker(recFd, dir); merr != nil && err == nil {
			err = merr
		}
	}
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return stored, fmt.Errorf("volume %s: create %s on %s: %w", vol.ID(), vol.SubDir, vol.ShareSource(), err)
	}
	if perm != nil {
		defer unix.Close(fd)
		if err := unix.Fchmod(fd, *perm); err != nil {
			return stored, fmt.Errorf("volume %s: chmod %o %s on %s: %w", vol.ID(), *perm, vol.SubDir, vol.ShareSource(), err)
		}
	}
	return stored, nil
}

// Disposal says what Dispose did.
type Disposal string

// What Dispose can do to a volume's directory.
const (
	Deleted     Disposal = "deleted"
	Archived    Disposal = "archived"
	Retained    Disposal = "retained"
	NotOurs     Disposal = "left in place: no creation record (a static volume, or already deleted)"
	OtherOwner  Disposal = "left in place: the directory's creation record belongs to another volume ID"
	ShareRootNo Disposal = "left in place: a volume that is the share root is never deleted"
	Adopted     Disposal = "left in place: the directory existed before the volume was created"
)

// ForeignClusterError is Dispose's refusal to act on a volume whose creation
// record names another cluster than the controller's: its PV was copied from
// that cluster, volume ID and all. Nothing was changed.
type ForeignClusterError struct {
	Volume Volume
	// RecordCluster is the cluster ID in the record: the cluster that created the volume.
	RecordCluster string
	// Cluster is this controller's --cluster-id, possibly empty.
	Cluster string
}

func (e *ForeignClusterError) Error() string {
	v := e.Volume
	return fmt.Sprintf("volume %q: directory %s on %s was created by cluster %q, and this controller %s; "+
		"refusing to touch another cluster's volume: the directory and its creation record are unchanged. "+
		"This happens when a PV is copied from cluster %q into this one, or when --cluster-id was changed. "+
		"To remove the PV here and keep the data, set its persistentVolumeReclaimPolicy to Retain and delete the PV object. "+
		"To delete the data, delete the volume in cluster %q; if the volume really is this cluster's now, "+
		"delete the directory and its creation record %s on %s by hand",
		v.ID(), path.Join(v.Share, v.SubDir), v.Server, e.RecordCluster, DescribeClusterID(e.Cluster),
		e.RecordCluster, e.RecordCluster, path.Join(v.Share, RecordDir, recordKey(v.SubDir)), v.Server)
}

// DescribeClusterID says how a controller with this cluster ID was started,
// for messages: `runs with --cluster-id "X"` or `runs without --cluster-id`
// and which setting is missing (--cluster-id=auto that could not read the
// cluster ID logs why at start).
func DescribeClusterID(id string) string {
	if id == "" {
		return "runs without --cluster-id (none was set, or --cluster-id=auto could not read the UID of the Namespace kube-system at start, " +
			"as the controller's log says: grant its ServiceAccount get on namespaces/kube-system, or set the chart's clusterID value)"
	}
	return fmt.Sprintf("runs with --cluster-id %q", id)
}

// Dispose applies vol's delete policy. It acts only on a directory that has a
// creation record, so a hand-written or copied static PV whose handle says
// "delete" cannot destroy data this driver never created, and a second
// DeleteVolume is a no-op. A record of this very volume ID that names
// another cluster than clusterID (a PV copied from that cluster) is refused
// with a *ForeignClusterError, touching nothing. The record goes last, so a
// retry after a crash or a busy-file error finishes the job. archivedAs is
// the archive's path relative to the share.
func Dispose(sh *Share, vol Volume, clusterID string, now time.Time) (done Disposal, archivedAs string, err error) {
	if vol.SubDir == "" {
		return ShareRootNo, "", nil
	}
	recFd, err := sh.RecordDirFd()
	if err != nil {
		return "", "", err
	}
	rec, ok, err := ReadRecord(recFd, vol.SubDir)
	if err != nil || !ok {
		return NotOurs, "", err
	}
	if rec.VolumeID != vol.ID() {
		return OtherOwner, "", nil
	}
	if rec.ForeignTo(clusterID) {
		return "", "", &ForeignClusterError{Volume: vol, RecordCluster: rec.ClusterID, Cluster: clusterID}
	}
	switch {
	case vol.OnDelete == OnDeleteRetain:
		done = Retained
	case rec.Adopted:
		done = Adopted
	case vol.OnDelete == OnDeleteArchive:
		archivedAs, err = archive(sh.RootFd(), vol.SubDir, now)
		if err != nil {
			return "", "", fmt.Errorf("volume %s: archive %s on %s: %w", vol.ID(), vol.SubDir, vol.ShareSource(), err)
		}
		done = Archived
	default:
		if err := removeVolumeDir(sh.RootFd(), recFd, vol.SubDir); err != nil {
			return "", "", fmt.Errorf("volume %s: delete %s on %s: %w", vol.ID(), vol.SubDir, vol.ShareSource(), err)
		}
		done = Deleted
	}
	if err := DeleteRecord(recFd, vol.SubDir); err != nil {
		return "", "", err
	}
	return done, archivedAs, nil
}

func removeVolumeDir(rootFd, recFd int, subDir string) error {
	parent, base := splitParent(subDir)
	pfd, err := openParent(rootFd, parent)
	if err != nil {
		return ignoreNotExist(err)
	}
	err = RemoveTreeAt(pfd, base)
	closeUnlessRoot(pfd, rootFd)
	if err != nil {
		return err
	}
	return RemoveEmptyParents(rootFd, subDir,
		func(dir string) (bool, error) { return HasParentMarker(recFd, dir) },
		func(dir string) error { return DeleteParentMarker(recFd, dir) })
}

// openParent opens a volume directory's parent; for a top-level volume that
// is the share root itself, used without dup(2). Close with closeUnlessRoot.
func openParent(rootFd int, parent string) (int, error) {
	if parent == "" {
		return rootFd, nil
	}
	return OpenBeneath(rootFd, parent)
}

// ArchivePrefix starts the name of every archived volume directory.
const ArchivePrefix = "archived-"

// ArchiveName is the name an archived directory gets: the original name, a
// UTC timestamp and a random suffix, so that archiving the same PVC name
// twice, even in the same second, keeps both archives.
func ArchiveName(base string, now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	suffix := "-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
	if max := MaxComponentLen - len(ArchivePrefix) - len(suffix); len(base) > max {
		base = base[:max]
		for len(base) > 0 && !utf8.ValidString(base) {
			base = base[:len(base)-1]
		}
	}
	return ArchivePrefix + base + suffix
}

// archive renames the directory within its parent. NFS has no
// RENAME_NOREPLACE, so the target is checked first; with a random suffix a
// collision would need two archives in one second with the same 32 random
// bits, and the check catches even that.
func archive(rootFd int, subDir string, now time.Time) (string, error) {
	parent, base := splitParent(subDir)
	pfd, err := openParent(rootFd, parent)
	if err != nil {
		return "", ignoreNotExist(err)
	}
	defer closeUnlessRoot(pfd, rootFd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == unix.ENOENT {
		return "", nil
	}
	for range 5 {
		name := ArchiveName(base, now)
		if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != unix.ENOENT {
			continue
		}
		if err := unix.Renameat(pfd, base, pfd, name); err != nil {
			return "", fmt.Errorf("rename %s to %s: %w", base, name, err)
		}
		if parent == "" {
			return name, nil
		}
		return parent + "/" + name, nil
	}
	return "", fmt.Errorf("could not find a free archive name for %s", subDir)
}

// DirExists reports whether the volume directory rel exists under the share,
// as a real directory reached without symlinks.
func DirExists(sh *Share, rel string) (bool, error) {
	fd, err := OpenBeneath(sh.RootFd(), rel)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, ErrSymlink) {
			return false, nil
		}
		return false, err
	}
	unix.Close(fd)
	return true, nil
}
