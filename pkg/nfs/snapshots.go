package nfs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// A SnapshotRecord is what the driver knows about one snapshot. It is a
// small JSON file, SnapshotDir/<key>.json, beside the copy SnapshotDir/<key>/.
// It is created exclusively (written under a name of its own, then
// link(2)ed to its name, which fails if the name exists) and replaced
// atomically (rename(2)); unlike a volume record it has no length limit,
// because it keeps two full IDs for ListSnapshots.
type SnapshotRecord struct {
	Version int    `json:"v"`
	Name    string `json:"name"`
	ID      string `json:"id"`
	// SourceVolumeID is the volume the snapshot was taken of. The volume
	// may be gone: the snapshot still restores.
	SourceVolumeID      string `json:"sourceVolumeID"`
	SourceCapacityBytes int64  `json:"sourceCapacityBytes,omitempty"`
	// ClusterID is the --cluster-id of the controller that took it.
	ClusterID string `json:"clusterID,omitempty"`
	// Created is when the snapshot was cut, in Unix nanoseconds.
	Created int64 `json:"created"`
	// Ready is set only once the copy is complete; a record without it is
	// a copy in progress, or one a crashed controller left, which the next
	// CreateSnapshot of the name starts again.
	Ready     bool       `json:"ready"`
	SizeBytes int64      `json:"sizeBytes"`
	Method    CopyMethod `json:"method,omitempty"`
	// Skipped are directories of other volumes inside the source, not copied.
	Skipped []string `json:"skipped,omitempty"`
}

// ForeignTo reports whether the snapshot was taken by another cluster's
// controller than clusterID, with the rule of Record.ForeignTo.
func (r SnapshotRecord) ForeignTo(clusterID string) bool {
	return r.ClusterID != "" && r.ClusterID != clusterID
}

// CreationTime is when the snapshot was cut.
func (r SnapshotRecord) CreationTime() time.Time { return time.Unix(0, r.Created) }

const snapshotRecordSuffix = ".json"

// OpenSnapshotDir opens, creating on first use, the share's SnapshotDir.
func OpenSnapshotDir(sh *Share) (int, error) {
	fd, _, err := MkdirAllBeneath(sh.RootFd(), SnapshotDir, 0o700)
	if err != nil {
		return -1, fmt.Errorf("open %s on %s: %w", SnapshotDir, sh.Source(), err)
	}
	return fd, nil
}

// LookupSnapshotDir opens the share's SnapshotDir if it exists (ok=false
// otherwise), so that reading snapshots, and refusing a request, writes
// nothing.
func LookupSnapshotDir(sh *Share) (fd int, ok bool, err error) {
	fd, err = OpenBeneath(sh.RootFd(), SnapshotDir)
	if errors.Is(err, unix.ENOENT) {
		return -1, false, nil
	}
	if err != nil {
		return -1, false, fmt.Errorf("open %s on %s: %w", SnapshotDir, sh.Source(), err)
	}
	return fd, true, nil
}

// ReadSnapshotRecord returns the record of snap, or ok=false when there is none.
func ReadSnapshotRecord(dirFd int, snap Snapshot) (rec SnapshotRecord, ok bool, err error) {
	return readSnapshotRecordAt(dirFd, snap.Key()+snapshotRecordSuffix)
}

func readSnapshotRecordAt(dirFd int, name string) (rec SnapshotRecord, ok bool, err error) {
	fd, err := unix.Openat(dirFd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("open snapshot record %s/%s: %w", SnapshotDir, name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return rec, false, fmt.Errorf("read snapshot record %s/%s: %w", SnapshotDir, name, err)
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, false, fmt.Errorf("snapshot record %s/%s is corrupt: %w", SnapshotDir, name, err)
	}
	return rec, true, nil
}

// writeTemp writes data to a new file of its own in dirFd and returns its name.
func writeTemp(dirFd int, prefix string, data []byte) (string, error) {
	tmp := tempName(prefix)
	fd, err := unix.Openat(dirFd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return "", err
	}
	for w := 0; w < len(data); {
		n, err := unix.Write(fd, data[w:])
		if err != nil {
			unix.Close(fd)
			_ = unix.Unlinkat(dirFd, tmp, 0)
			return "", err
		}
		w += n
	}
	if err := unix.Fsync(fd); err != nil {
		unix.Close(fd)
		_ = unix.Unlinkat(dirFd, tmp, 0)
		return "", err
	}
	if err := unix.Close(fd); err != nil {
		_ = unix.Unlinkat(dirFd, tmp, 0)
		return "", err
	}
	return tmp, nil
}

// CreateSnapshotRecord writes rec for snap, failing with ErrRecordExists
// when snap has a record.
func CreateSnapshotRecord(dirFd int, snap Snapshot, rec SnapshotRecord) error {
	rec.Version = 1
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	name := snap.Key() + snapshotRecordSuffix
	tmp, err := writeTemp(dirFd, ".new-"+snap.Key(), data)
	if err == nil {
		err = unix.Linkat(dirFd, tmp, dirFd, name, 0)
		_ = unix.Unlinkat(dirFd, tmp, 0)
	}
	if err == unix.EEXIST {
		return ErrRecordExists
	}
	if err != nil {
		return fmt.Errorf("write snapshot record %s/%s of %q: %w", SnapshotDir, name, snap.Name, err)
	}
	return nil
}

// UpdateSnapshotRecord replaces the record of snap in one step.
func UpdateSnapshotRecord(dirFd int, snap Snapshot, rec SnapshotRecord) error {
	rec.Version = 1
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	name := snap.Key() + snapshotRecordSuffix
	tmp, err := writeTemp(dirFd, ".update-"+snap.Key(), data)
	if err == nil {
		if err = unix.Renameat(dirFd, tmp, dirFd, name); err != nil {
			_ = unix.Unlinkat(dirFd, tmp, 0)
		}
	}
	if err != nil {
		return fmt.Errorf("replace snapshot record %s/%s of %q: %w", SnapshotDir, name, snap.Name, err)
	}
	return nil
}

// ListSnapshotRecords returns the records of every snapshot on the share.
func ListSnapshotRecords(dirFd int) ([]SnapshotRecord, error) {
	fd, err := unix.Openat(dirFd, ".", dirOpenFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", SnapshotDir, err)
	}
	dir := os.NewFile(uintptr(fd), SnapshotDir)
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", SnapshotDir, err)
	}
	var out []SnapshotRecord
	for _, n := range names {
		key, ok := strings.CutSuffix(n, snapshotRecordSuffix)
		if !ok || !isRecordKey(key) {
			continue
		}
		rec, ok, err := readSnapshotRecordAt(dirFd, n)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, rec)
		}
	}
	return out, nil
}

// ErrSourceNotFound is a snapshot or clone source that does not exist, or
// that is not a volume this driver created.
var ErrSourceNotFound = errors.New("source not found")

// SourceVolume returns the record of vol, the source of a snapshot or a
// clone, after checking that it is a live volume this driver created (its
// record names exactly this ID; static volumes and the share root are
// refused, so that a hand-written or forged ID cannot copy another tenant's
// directory) of this cluster, and that its directory exists.
func SourceVolume(sh *Share, vol Volume, clusterID string) (Record, error) {
	if vol.SubDir == "" {
		return Record{}, fmt.Errorf("%w: volume %s is the whole share %s; a snapshot or clone copies one volume's directory, never a share root",
			ErrSourceNotFound, vol.ID(), vol.ShareSource())
	}
	recFd, err := sh.RecordDirFd()
	if err != nil {
		return Record{}, err
	}
	rec, ok, err := ReadRecord(recFd, vol.SubDir)
	if err != nil {
		return Record{}, err
	}
	if !ok || !rec.IsVolume(vol.ID()) || rec.Tombstone {
		return Record{}, fmt.Errorf("%w: volume %s: no creation record of this volume ID for %s on %s (a static volume, a deleted one, or not this driver's); only volumes this driver created are copied",
			ErrSourceNotFound, vol.ID(), vol.SubDir, vol.ShareSource())
	}
	if rec.ForeignTo(clusterID) {
		return Record{}, &ForeignClusterError{Volume: vol, RecordCluster: rec.ClusterID, Cluster: clusterID}
	}
	ok, err = DirExists(sh, vol.SubDir)
	if err != nil {
		return Record{}, fmt.Errorf("volume %s: %s on %s: %w", vol.ID(), vol.SubDir, vol.ShareSource(), err)
	}
	if !ok {
		return Record{}, fmt.Errorf("%w: volume %s: directory %s is missing on %s", ErrSourceNotFound, vol.ID(), vol.SubDir, vol.ShareSource())
	}
	return rec, nil
}

// emptyDir makes rel, under the share root, an empty directory of its own
// (mode 0700 until the copy sets the source's), removing what a copy that
// was interrupted left there, and returns an fd of it.
func emptyDir(rootFd int, rel string) (int, error) {
	parent, base := splitParent(rel)
	pfd, err := openParent(rootFd, parent)
	if err != nil {
		return -1, err
	}
	defer closeUnlessRoot(pfd, rootFd)
	if err := RemoveTreeAt(pfd, base); err != nil {
		return -1, fmt.Errorf("remove the interrupted copy %s: %w", rel, err)
	}
	if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
		return -1, fmt.Errorf("mkdir %s: %w", rel, err)
	}
	return openDirAt(pfd, base)
}

// TakeSnapshot copies the directory of vol into the snapshot's own
// directory, from scratch, and then marks rec ready with the bytes copied
// and the method used. Directories of other volumes inside vol's are not
// copied.
func TakeSnapshot(ctx context.Context, sh *Share, snap Snapshot, vol Volume, rec SnapshotRecord, fastest CopyMethod) (SnapshotRecord, error) {
	dirFd, err := OpenSnapshotDir(sh)
	if err != nil {
		return rec, err
	}
	defer unix.Close(dirFd)
	recFd, err := sh.RecordDirFd()
	if err != nil {
		return rec, err
	}
	dst, err := emptyDir(sh.RootFd(), snap.DataDir())
	if err != nil {
		return rec, fmt.Errorf("snapshot %s: %w", snap.ID(), err)
	}
	defer unix.Close(dst)
	src, err := OpenBeneath(sh.RootFd(), vol.SubDir)
	if err != nil {
		return rec, fmt.Errorf("snapshot %s: open the source %s on %s: %w", snap.ID(), vol.SubDir, vol.ShareSource(), err)
	}
	defer unix.Close(src)
	start := time.Now()
	res, err := CopyTree(ctx, src, dst, CopyOptions{
		Fastest: fastest, SrcRel: vol.SubDir,
		Skip: func(rel string) (bool, error) { return hasRecord(recFd, rel) },
	})
	if err != nil {
		return rec, fmt.Errorf("snapshot %s of volume %s: %s on %s to %s: %w", snap.ID(), vol.ID(), vol.SubDir, vol.ShareSource(), snap.DataDir(), err)
	}
	rec.Ready, rec.SizeBytes, rec.Method, rec.Skipped = true, res.Bytes, res.Method, res.Skipped
	if err := UpdateSnapshotRecord(dirFd, snap, rec); err != nil {
		return rec, err
	}
	klog.InfoS("Snapshot copied", "snapshotID", snap.ID(), "sourceVolumeID", vol.ID(), "path", snap.Source(),
		"bytes", res.Bytes, "entries", res.Entries, "method", res.Method, "skipped", res.Skipped, "duration", time.Since(start))
	return rec, nil
}

// DisposeSnapshot removes the snapshot's copy and then its record, so a
// crash in between is finished by a retry. It acts only when the record
// names exactly this snapshot ID; a record of another cluster is refused
// with a *ForeignSnapshotError, touching nothing.
func DisposeSnapshot(sh *Share, snap Snapshot, clusterID string) (Disposal, error) {
	dirFd, ok, err := LookupSnapshotDir(sh)
	if err != nil || !ok {
		return NotOurs, err
	}
	defer unix.Close(dirFd)
	rec, ok, err := ReadSnapshotRecord(dirFd, snap)
	if err != nil {
		return "", err
	}
	if !ok {
		return NotOurs, nil
	}
	if rec.ID != snap.ID() {
		return OtherOwner, nil
	}
	if rec.ForeignTo(clusterID) {
		return "", &ForeignSnapshotError{Snapshot: snap, RecordCluster: rec.ClusterID, Cluster: clusterID}
	}
	if err := RemoveTreeAt(dirFd, snap.Key()); err != nil {
		return "", fmt.Errorf("snapshot %s: remove %s: %w", snap.ID(), snap.Source(), err)
	}
	name := snap.Key() + snapshotRecordSuffix
	if err := unix.Unlinkat(dirFd, name, 0); err != nil && err != unix.ENOENT {
		return "", fmt.Errorf("snapshot %s: remove record %s/%s on %s:%s: %w", snap.ID(), SnapshotDir, name, snap.Server, snap.Share, err)
	}
	return Deleted, nil
}

// ForeignSnapshotError is DisposeSnapshot's refusal to delete a snapshot
// another cluster took.
type ForeignSnapshotError struct {
	Snapshot      Snapshot
	RecordCluster string
	Cluster       string
}

func (e *ForeignSnapshotError) Error() string {
	s := e.Snapshot
	return fmt.Sprintf("snapshot %q: %s was taken by cluster %q, and this controller %s; refusing to delete another cluster's snapshot: nothing was changed. "+
		"Delete it from cluster %q, or set the VolumeSnapshotContent's deletionPolicy to Retain and delete the object here",
		s.ID(), s.Source(), e.RecordCluster, DescribeClusterID(e.Cluster), e.RecordCluster)
}
