package nfs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// Provision makes vol's directory on the share and records it as rec.
//
// The record is claimed first, with an exclusive symlink, and the directory
// made second: two controllers racing for one subdirectory cannot both win,
// and a crash between the two steps leaves a record whose retry finishes the
// directory. When a record already exists, compatible decides whether it is
// this same volume (a retry: the directory is made sure of and the stored
// record returned) or a conflict (its error is returned with the stored record).
// A directory that existed before is adopted (and never deleted later) only
// when it is the retained directory of the same claim, or when
// opts.AdoptExisting allows a directory the driver knows nothing about;
// otherwise an *AdoptionError says so. Parents that the driver creates get a
// marker, so that only they are removed with their last volume.
func Provision(sh *Share, vol Volume, rec Record, opts ProvisionOptions) (Record, error) {
	perm, compatible := opts.Perm, opts.Compatible
	if err := RefuseShareRoot(vol); err != nil {
		return Record{}, err
	}
	recFd, err := sh.RecordDirFd()
	if err != nil {
		return Record{}, err
	}
	rootFd := sh.RootFd()
	walkFd, depth, err := openExisting(rootFd, vol.SubDir)
	if err != nil {
		return Record{}, fmt.Errorf("volume %s: %s on %s: %w", vol.ID(), vol.SubDir, vol.ShareSource(), err)
	}
	// walkFd is handed to the mkdir walk below; until then it is closed on
	// every return.
	defer func() {
		if walkFd >= 0 {
			closeUnlessRoot(walkFd, rootFd)
		}
	}()
	parts := strings.Split(vol.SubDir, "/")
	rec.Version = 1
	dirExists := depth == len(parts)
	rec.Adopted = dirExists && !opts.Owned
	if rec.Created == 0 {
		rec.Created = time.Now().Unix()
	}
	store := symlinkStore{fd: recFd}
	stored, claimed, unknownDir, err := claimRecord(store, vol, rec, dirExists, compatible)
	if err != nil {
		return stored, err
	}
	// rollback forgets a record this call wrote, when the volume cannot be made.
	rollback := func(err error) error {
		if !claimed {
			return err
		}
		derr := store.Delete(vol.SubDir)
		if derr == nil {
			derr = unmarkNested(recFd, vol.SubDir)
		}
		if derr != nil {
			return fmt.Errorf("%w; and the record could not be rolled back: %v", err, derr)
		}
		return err
	}
	if err := markNested(recFd, vol.SubDir, &sh.e.flags); err != nil {
		return Record{}, rollback(err)
	}
	// Ancestors first, before anything is made: a refused volume never
	// touches the directory of the volume it would lie in.
	if err := checkAncestors(recFd, vol, ancestors(vol.SubDir)); err != nil {
		return stored, rollback(err)
	}
	// Only a directory that existed before the volume's record can hold
	// volumes of a driver without nesting checks; a retry over the
	// volume's own directory does not search it again.
	if dirExists {
		if err := checkDescendants(sh, recFd, vol, stored.Adopted || opts.Owned && claimed); err != nil {
			return stored, rollback(err)
		}
	}
	if unknownDir && !opts.AdoptExisting && !opts.Owned {
		return Record{}, rollback(&AdoptionError{Volume: vol, Claim: rec.Claim()})
	}
	if provisionHook != nil {
		provisionHook(vol)
	}
	// A final directory that this call makes is not opened again unless
	// perm needs it, which saves a round trip per volume.
	fd, created, err := mkdirFrom(rootFd, walkFd, parts, depth, 0o777, perm != nil)
	walkFd = -1
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
		err = fmt.Errorf("volume %s: create %s on %s: %w", vol.ID(), vol.SubDir, vol.ShareSource(), err)
		if slices.Contains(created, vol.SubDir) {
			return stored, err // made, only a parent marker failed: a retry finishes
		}
		// The directory was not made, so the record protects nothing; left
		// behind, it would refuse the subDir to every other name.
		return stored, rollback(err)
	}
	if err := checkAppeared(sh, recFd, vol, depth, dirExists, created); err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		if uerr := removeCreated(rootFd, recFd, vol.SubDir, created); uerr != nil {
			return stored, fmt.Errorf("%w; and the directories this call made could not be removed: %v", err, uerr)
		}
		return stored, rollback(err)
	}
	if perm != nil {
		defer unix.Close(fd)
		if err := unix.Fchmod(fd, *perm); err != nil {
			return stored, fmt.Errorf("volume %s: chmod %o %s on %s: %w", vol.ID(), *perm, vol.SubDir, vol.ShareSource(), err)
		}
	}
	return stored, nil
}

// ProvisionOptions are Provision's choices beyond the record.
type ProvisionOptions struct {
	// Perm, when not nil, is applied to the volume directory with fchmod, so
	// the process umask does not matter.
	Perm *uint32
	// AdoptExisting lets a volume take over a directory that exists without
	// any record (the StorageClass's adoptExisting: "true").
	AdoptExisting bool
	// Compatible decides whether an existing record is this same volume (a
	// retry) or a conflict, whose error it returns.
	Compatible func(stored Record) error
	// Owned records an existing directory as the volume's own, not adopted,
	// so that its delete policy applies: a directory that the provisioner
	// this driver replaces made for the same claim (nfs-csi migrate).
	Owned bool
}

// RefuseShareRoot is the error for a volume that is the whole share, which
// no volume the driver creates, imports or deletes may be.
func RefuseShareRoot(vol Volume) error {
	if vol.SubDir != "" {
		return nil
	}
	return fmt.Errorf("volume %s: refusing the share root of %s: a volume needs a directory of its own below the share", vol.ID(), vol.ShareSource())
}

// ErrAdoption is the refusal to hand an existing directory's data to a new
// volume.
var ErrAdoption = errors.New("the directory exists and is not this claim's")

// AdoptionError explains why an existing directory was not adopted.
type AdoptionError struct {
	Volume Volume
	// Tombstone is the record of the retained volume that left the directory;
	// nil when the driver knows nothing about the directory.
	Tombstone *Record
	// Claim is the new volume's claim, "namespace/name", possibly empty.
	Claim string
}

func (e *AdoptionError) Error() string {
	v := e.Volume
	if e.Tombstone == nil {
		return fmt.Sprintf("%v: directory %s on %s already exists, and no record says which volume it belongs to; "+
			"its data is handed to a new volume only when the StorageClass says so with adoptExisting: \"true\". "+
			"Set that if the directory is meant for this claim; otherwise remove or rename the directory, "+
			"or give the class a subDir template that is unique per claim, such as ${pvc.metadata.namespace}/${pvc.metadata.name}",
			ErrAdoption, v.SubDir, v.ShareSource())
	}
	ts := e.Tombstone
	return fmt.Sprintf("%v: directory %s on %s holds the retained data of volume %q (%s) of claim %s, deleted with onDelete: retain; "+
		"only a claim of that same namespace and name adopts it, and this one is %s. "+
		"Use a subDir template that includes the namespace, such as ${pvc.metadata.namespace}/${pvc.metadata.name}; "+
		"to hand the data to another claim on purpose, remove the tombstone %s on %s by hand and set adoptExisting: \"true\"",
		ErrAdoption, v.SubDir, v.ShareSource(), ts.Name, ts.VolumeID, describeClaim(ts.Claim()), describeClaim(e.Claim),
		path.Join(v.Share, RecordDir, recordKey(v.SubDir)), v.Server)
}

func (e *AdoptionError) Unwrap() error { return ErrAdoption }

func describeClaim(c string) string {
	if c == "" {
		return "unknown (CreateVolume had no csi.storage.k8s.io/pvc/namespace and pvc/name parameters: run csi-provisioner with --extra-create-metadata)"
	}
	return c
}

// claimRecord writes rec as the record of vol's subdirectory. When a record
// exists, compatible decides whether it is this same volume (a retry: the
// stored record is returned) or a conflict (its error is returned). A
// conflicting record whose directory does not exist and that is older than
// StaleRecordAge, or a tombstone whose directory is gone, is reclaimed once;
// so is a tombstone of the same claim, whose directory is then adopted.
// claimed says whether this call wrote the record, so that it can roll it back when
// the directory cannot be made; unknownDir, whether the directory existed with
// no record at all, so that adoptExisting decides.
func claimRecord(store symlinkStore, vol Volume, rec Record, dirExists bool, compatible func(stored Record) error) (stored Record, claimed, unknownDir bool, err error) {
	reclaimed := false
	for attempt := 0; attempt < 3; attempt++ {
		stored, raw, err := store.create(vol.SubDir, rec)
		if err == nil {
			return rec, true, dirExists && !reclaimed, nil
		}
		if !errors.Is(err, ErrRecordExists) {
			return Record{}, false, false, err
		}
		var cerr error
		switch {
		case stored.Tombstone && stored.ForeignTo(rec.ClusterID):
			cerr = compatible(stored)
		case stored.Tombstone && !dirExists:
			// The retained directory was removed: nothing left to protect.
		case stored.Tombstone && stored.sameClaim(rec):
			// The same claim, created again: it gets its data back.
		case stored.Tombstone:
			cerr = &AdoptionError{Volume: vol, Tombstone: &stored, Claim: rec.Claim()}
		default:
			cerr = compatible(stored)
			if cerr == nil {
				return stored, false, false, nil // a retry
			}
			if !dirExists && stored.reclaimable(rec.ClusterID, time.Now()) {
				cerr = nil
			}
		}
		if cerr != nil {
			return stored, false, false, cerr
		}
		if reclaimed {
			return stored, false, false, fmt.Errorf("volume %s: the record of %s on %s changed while it was reclaimed; retry", vol.ID(), vol.SubDir, vol.ShareSource())
		}
		reclaimed = true
		free, err := reclaimRecord(store.fd, vol.SubDir, raw)
		if err != nil {
			return stored, false, false, err
		}
		if free {
			klog.InfoS("Reclaimed a record: a volume whose directory never appeared, or a retained volume's tombstone",
				"volumeID", vol.ID(), "path", vol.Source(), "staleName", stored.Name, "staleVolumeID", stored.VolumeID,
				"staleCreated", time.Unix(stored.Created, 0).UTC())
		}
	}
	return Record{}, false, false, fmt.Errorf("volume %s: the record of %s on %s keeps changing under concurrent creates; retry", vol.ID(), vol.SubDir, vol.ShareSource())
}

// provisionHook, when set by a test, runs between Provision's checks and its
// mkdir, where another replica's create can interleave.
var provisionHook func(vol Volume)

// Disposal says what Dispose did.
type Disposal string

// What Dispose can do to a volume's directory.
const (
	Deleted Disposal = "deleted"
	// DeletedKeptNested: the data is gone, but directories of other volumes
	// inside it (created before nesting was refused) and their way up stay.
	DeletedKeptNested Disposal = "deleted, except the directories of other volumes inside it"
	Archived          Disposal = "archived"
	Retained          Disposal = "retained"
	NotOurs           Disposal = "left in place: no creation record (a static volume, or already deleted)"
	OtherOwner        Disposal = "left in place: the directory's creation record belongs to another volume ID"
	ShareRootNo       Disposal = "left in place: a volume that is the share root is never deleted"
	Adopted           Disposal = "left in place: the directory existed before the volume was created"
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
	if !rec.IsVolume(vol.ID()) {
		return OtherOwner, "", nil
	}
	if rec.ForeignTo(clusterID) {
		return "", "", &ForeignClusterError{Volume: vol, RecordCluster: rec.ClusterID, Cluster: clusterID}
	}
	if rec.Tombstone {
		return Retained, "", nil // a retry: the volume is already gone
	}
	switch {
	case vol.OnDelete == OnDeleteRetain:
		done = Retained
	case rec.Adopted:
		done = Adopted
	case vol.OnDelete == OnDeleteArchive:
		// A rename takes every directory inside along, and a volume nested
		// in this one by a driver without nesting checks would move with
		// it, away from its PV. Its record predates the markers when this
		// one does (Created is zero).
		var nested *NestedError
		if err := checkDescendants(sh, recFd, vol, rec.Created == 0); errors.As(err, &nested) {
			return "", "", fmt.Errorf("%w: volume %s: archiving %s on %s would move the directory %s of volume %q (%s) with it; "+
				"nothing was changed. Delete that volume first; the archive is retried", ErrNested,
				vol.ID(), vol.SubDir, vol.ShareSource(), nested.OtherDir, nested.Other.Name, nested.Other.VolumeID)
		} else if err != nil {
			return "", "", err
		}
		archivedAs, err = archive(sh.RootFd(), vol.SubDir, now)
		if err != nil {
			return "", "", fmt.Errorf("volume %s: archive %s on %s: %w", vol.ID(), vol.SubDir, vol.ShareSource(), err)
		}
		done = Archived
	default:
		kept, err := removeVolumeDir(sh.RootFd(), recFd, vol.SubDir)
		if err != nil {
			return "", "", fmt.Errorf("volume %s: delete %s on %s: %w", vol.ID(), vol.SubDir, vol.ShareSource(), err)
		}
		done = Deleted
		if len(kept) > 0 {
			// What is left is only the way to other volumes: a parent like
			// the ones templates make, removed with the last of them.
			if err := CreateParentMarker(recFd, vol.SubDir); err != nil {
				return "", "", err
			}
			done = DeletedKeptNested
			klog.InfoS("Deleted a volume's data but kept the directories of other volumes inside it",
				"volumeID", vol.ID(), "path", vol.Source(), "kept", kept)
		}
	}
	if done == Retained {
		// The tombstone keeps the directory from being handed to another
		// claim with the data in it.
		rec.Tombstone = true
		err = symlinkStore{fd: recFd}.Update(vol.SubDir, rec)
	} else {
		err = symlinkStore{fd: recFd}.deleteRecord(vol.SubDir, rec)
	}
	if err != nil {
		return "", "", err
	}
	if rec.Filled {
		if err := removeFillMarker(recFd, vol.SubDir); err != nil {
			return "", "", err
		}
	}
	if err := unmarkNested(recFd, vol.SubDir); err != nil {
		return "", "", err
	}
	return done, archivedAs, nil
}

// removeVolumeDir removes a volume's directory, except the directories inside
// it that have records of their own (kept, share-relative), and then the
// parents the driver made that are now empty and are not volumes themselves.
func removeVolumeDir(rootFd, recFd int, subDir string) (kept []string, err error) {
	parent, base := splitParent(subDir)
	pfd, err := openParent(rootFd, parent)
	if err != nil {
		return nil, ignoreNotExist(err)
	}
	kept, err = removeTree(pfd, base, subDir, func(rel string) (bool, error) { return hasRecord(recFd, rel) })
	closeUnlessRoot(pfd, rootFd)
	if err != nil || len(kept) > 0 {
		return kept, err
	}
	return nil, RemoveEmptyParents(rootFd, subDir,
		func(dir string) (bool, error) {
			// A parent that became a volume itself (an outer volume created
			// after the inner one made the directory) is that volume's.
			if owned, err := HasParentMarker(recFd, dir); err != nil || !owned {
				return false, err
			}
			isVolume, err := hasRecord(recFd, dir)
			return !isVolume, err
		},
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
func DirExists(sh *Share, rel string) (bool, error) { return dirExistsAt(sh.RootFd(), rel) }
