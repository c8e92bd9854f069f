package nfs

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A Record is what the controller remembers about a volume it created, kept
// on the share so that another controller replica, or this one after a
// restart, gives the same answers: CreateVolume's idempotency and
// AlreadyExists checks, and DeleteVolume's proof that the directory is ours.
//
// A record is stored as the target of a symlink in .nfs-csi/volumes/ at the
// share root, named after a hash of the subdirectory. symlink(2) is atomic and
// exclusive on NFS, needs no fsync-and-rename dance to survive a crash, and
// costs one round trip to write and one to read.
type Record struct {
	Version          int    `json:"v"`
	Name             string `json:"name"`
	VolumeID         string `json:"id"`
	CapacityBytes    int64  `json:"capacityBytes,omitempty"`
	MountPermissions string `json:"mountPermissions,omitempty"`
	// Adopted marks a directory that existed before the volume was created,
	// such as a retained volume's directory that a new claim of the same name
	// reuses. The driver never deletes or archives an adopted directory.
	Adopted bool `json:"adopted,omitempty"`
	// ClusterID is the --cluster-id of the controller that created the
	// volume. A PV copied verbatim into a second cluster carries the same
	// volume ID, so only this tells the second cluster's controller that the
	// directory is not its own. Empty when the controller had none, and in
	// records written before the field existed.
	ClusterID string `json:"clusterID,omitempty"`
	// Created is when the record was claimed, in Unix seconds; zero in
	// records written before the field existed. A record whose directory
	// does not exist and that is older than StaleRecordAge protects nothing
	// (its create crashed or was abandoned), and another volume reclaims it.
	Created int64 `json:"t,omitempty"`
	// Tombstone marks the record of a volume deleted with onDelete=retain:
	// its directory and data stay, the volume is gone. Only a new volume of
	// the same claim adopts the directory again.
	Tombstone bool `json:"tombstone,omitempty"`
	// Filled marks a volume made from a snapshot or another volume: it has a
	// fill marker (fill.go), which goes with the record. An ordinary
	// volume's delete does not look for one, which on NFS is a LOOKUP round
	// trip every time (the records directory changes with every volume, so
	// the client cannot trust a cached "no such file").
	Filled bool `json:"filled,omitempty"`
	// ClaimNamespace and ClaimName name the PVC the volume was created for
	// (csi-provisioner's csi.storage.k8s.io/pvc/namespace and pvc/name
	// parameters); empty when the provisioner did not pass them. A tombstone's
	// directory is adopted again only by a volume of the same claim.
	ClaimNamespace string `json:"pvcNamespace,omitempty"`
	ClaimName      string `json:"pvcName,omitempty"`
	// NameEntry says that the volume's name, which is not its subDir, has an
	// entry of its own: a symlink to the subDir at the name's key (see
	// symlinkStore). A volume whose subDir is its name needs none (its record
	// is at that key), and records of earlier drivers have a "name-" entry
	// instead, or none.
	NameEntry bool `json:"nameEntry,omitempty"`
	// QuotaAgent is host:port of the quota agent that enforces
	// CapacityBytes as a project quota (StorageClass capacity: enforced);
	// empty when the capacity is only recorded. DeleteVolume and
	// ControllerExpandVolume, which get no StorageClass parameters, read it
	// here. The project ID is the agent's, kept on the server's file system.
	QuotaAgent string `json:"quotaAgent,omitempty"`
}

// Claim is "namespace/name" of the record's PVC, or empty when unknown.
func (r Record) Claim() string {
	if r.ClaimNamespace == "" || r.ClaimName == "" {
		return ""
	}
	return r.ClaimNamespace + "/" + r.ClaimName
}

// live reports whether the record is a volume's and not a tombstone.
func (r Record) live() bool { return !r.Tombstone }

// StaleRecordAge is how old a record without its directory must be before
// another volume may reclaim its subdirectory. A younger one may be another
// controller replica's CreateVolume between its two steps. It is well above
// the default operation timeout (30 s), after which a create that is still
// blocked on the server has been given up by its caller.
const StaleRecordAge = 5 * time.Minute

// reclaimable reports whether rec, whose directory does not exist, may be
// taken over at now: it is old enough, and it is not another cluster's.
func (r Record) reclaimable(clusterID string, now time.Time) bool {
	return !r.ForeignTo(clusterID) && now.Sub(time.Unix(r.Created, 0)) >= StaleRecordAge
}

// ForeignTo reports whether the record was written for another cluster than
// clusterID: it names a cluster, and not this one (also when clusterID is
// empty). A record that names no cluster belongs to whichever controller
// finds it, as records always did.
func (r Record) ForeignTo(clusterID string) bool {
	return r.ClusterID != "" && !fieldMatches(r.ClusterID, clusterID)
}

// RecordDir is the records directory under the share root.
const RecordDir = MetadataDirName + "/volumes"

// recordKey names the record of a subdirectory: one directory, one owner.
func recordKey(subDir string) string {
	sum := sha256.Sum256([]byte(subDir))
	return hex.EncodeToString(sum[:16])
}

// ErrRecordExists is returned by CreateRecord when another record holds the
// subdirectory; the caller reads it to decide between idempotent success and
// AlreadyExists.
var ErrRecordExists = errors.New("a record for this subdirectory already exists")

// OpenRecordDir opens, creating on first use, the records directory under rootFd.
func OpenRecordDir(rootFd int) (int, error) {
	fd, _, err := MkdirAllBeneath(rootFd, RecordDir, 0o700)
	return fd, err
}

// CreateRecord writes rec for subDir, failing with ErrRecordExists if any
// record already holds that subdirectory.
func CreateRecord(recDirFd int, subDir string, rec Record) error {
	data, err := encodeRecord(subDir, rec)
	if err != nil {
		return err
	}
	err = unix.Symlinkat(data, recDirFd, recordKey(subDir))
	if err == unix.EEXIST {
		return ErrRecordExists
	}
	if err != nil {
		return fmt.Errorf("write record %s/%s for %q: %w", RecordDir, recordKey(subDir), subDir, err)
	}
	return nil
}

// UpdateRecord replaces the record of subDir with rec in one step: it is
// written under a name of its own and renamed over the old one, which NFS
// does atomically, so a reader sees the old record or the new one.
func UpdateRecord(recDirFd int, subDir string, rec Record) error {
	data, err := encodeRecord(subDir, rec)
	if err != nil {
		return err
	}
	if err := replaceSymlink(recDirFd, recordKey(subDir), data); err != nil {
		return fmt.Errorf("replace record %s/%s for %q: %w", RecordDir, recordKey(subDir), subDir, err)
	}
	return nil
}

// tempName is a name of this call's own beside a record entry.
func tempName(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// MaxRecordLen is the longest record written: XFS and several NAS filers cap
// a symlink target at 1,024 bytes, and a record is one.
const MaxRecordLen = 1023

// hashedPrefix starts a record field stored as a hash because the record
// would not fit in MaxRecordLen otherwise.
const hashedPrefix = "sha256:"

// hashField is the stored form of a field too long to keep: enough of a hash
// to compare with, not to read.
func hashField(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hashedPrefix + hex.EncodeToString(sum[:16])
}

// fieldMatches reports whether a stored field, kept or hashed, holds v.
func fieldMatches(stored, v string) bool {
	return stored == v || strings.HasPrefix(stored, hashedPrefix) && stored == hashField(v)
}

// IsVolume reports whether the record is of the volume with this ID.
func (r Record) IsVolume(id string) bool { return fieldMatches(r.VolumeID, id) }

// HasName reports whether the record is of the volume of this CSI name.
func (r Record) HasName(name string) bool { return fieldMatches(r.Name, name) }

// sameClaim reports whether both records name one and the same claim.
func (r Record) sameClaim(o Record) bool {
	return r.Claim() != "" && o.Claim() != "" &&
		fieldMatches(r.ClaimNamespace, o.ClaimNamespace) && fieldMatches(r.ClaimName, o.ClaimName)
}

// encodeRecord renders rec as a symlink target of at most MaxRecordLen
// bytes. A record that fits is written as version 1, which every version of
// the driver reads. One that does not (long share paths, subDirs, names or
// cluster IDs; the volume ID alone can reach 2.3 KB) keeps its longest free
// text fields as hashes, longest first, until it fits, and is version 2:
// comparisons (IsVolume, HasName, the claim, the cluster) still work, the
// message of a conflict shows the hash. What goes is what the controller
// can rebuild: the volume ID from the request, the name from the PV.
func encodeRecord(subDir string, rec Record) (string, error) {
	rec.Version = 1
	for {
		data, err := json.Marshal(rec)
		if err != nil {
			return "", err
		}
		if len(data) <= MaxRecordLen {
			return string(data), nil
		}
		rec.Version = 2
		f := longestField(&rec)
		if f == nil {
			return "", fmt.Errorf("record for %q is %d bytes, over the %d-byte symlink limit of XFS and NAS filers", subDir, len(data), MaxRecordLen)
		}
		*f = hashField(*f)
	}
}

// longestField returns the free-text field of rec that is longest once
// JSON-escaped and not yet hashed, or nil when none is longer than its hash.
func longestField(rec *Record) *string {
	var longest *string
	longestLen := len(hashField("")) + 2
	for _, f := range []*string{&rec.VolumeID, &rec.Name, &rec.ClusterID, &rec.ClaimNamespace, &rec.ClaimName} { // never QuotaAgent: it is dialled
		if strings.HasPrefix(*f, hashedPrefix) {
			continue
		}
		if n := encodedLen(*f); n > longestLen {
			longest, longestLen = f, n
		}
	}
	return longest
}

func encodedLen(s string) int {
	b, _ := json.Marshal(s)
	return len(b)
}

// ReadRecord returns the record of subDir, or ok=false when there is none.
func ReadRecord(recDirFd int, subDir string) (rec Record, ok bool, err error) {
	rec, _, ok, err = readRecordAt(recDirFd, recordKey(subDir), subDir)
	return rec, ok, err
}

// readRecordAt reads the record stored under the entry name, and returns its
// raw bytes too, for a compare-and-swap; subDir is for messages. An entry
// that holds a volume's name entry instead (a subDir, not JSON) is ok=false
// with the subDir it names as raw.
func readRecordAt(recDirFd int, name, subDir string) (rec Record, raw string, ok bool, err error) {
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(recDirFd, name, buf)
	if err == unix.ENOENT {
		return Record{}, "", false, nil
	}
	if err != nil {
		return Record{}, "", false, fmt.Errorf("read record %s/%s for %q: %w", RecordDir, name, subDir, err)
	}
	if target, ok := strings.CutPrefix(string(buf[:n]), nameEntryMark); ok {
		// Not a record: the name entry of a volume whose name is subDir.
		return Record{}, target, false, nil
	}
	if err := json.Unmarshal(buf[:n], &rec); err != nil {
		return Record{}, "", false, fmt.Errorf("record %s/%s for %q is corrupt: %w", RecordDir, name, subDir, err)
	}
	return rec, string(buf[:n]), true, nil
}

// reclaimRecord removes the record of subDir (or the name entry at its key,
// then stale is the entry's subDir) if it still is exactly stale (compared
// byte for byte), and reports whether the key is now free to claim. NFS has no compare-and-delete, so the record is first renamed to
// a name of this call's own: only one of two racing callers gets it. If what
// was renamed is not the stale record (another caller reclaimed it and wrote
// its own in between), it is linked back, which fails rather than overwrite
// a record a third caller wrote meanwhile.
func reclaimRecord(recDirFd int, subDir string, stale string) (bool, error) {
	key := recordKey(subDir)
	tmp := tempName("reclaim-" + key)
	switch err := unix.Renameat(recDirFd, key, recDirFd, tmp); err {
	case nil:
	case unix.ENOENT:
		return true, nil
	default:
		return false, fmt.Errorf("reclaim record %s/%s for %q: %w", RecordDir, key, subDir, err)
	}
	_, raw, ok, err := readRecordAt(recDirFd, tmp, subDir)
	if err == nil && (ok || raw != "") && raw == stale {
		return true, ignoreNotExist(unix.Unlinkat(recDirFd, tmp, 0))
	}
	if lerr := unix.Linkat(recDirFd, tmp, recDirFd, key, 0); lerr != nil && lerr != unix.EEXIST {
		return false, fmt.Errorf("restore record %s/%s for %q from %s: %w", RecordDir, key, subDir, tmp, lerr)
	}
	return false, ignoreNotExist(unix.Unlinkat(recDirFd, tmp, 0))
}

// DeleteRecord removes the record of subDir; a missing record is not an error.
func DeleteRecord(recDirFd int, subDir string) error {
	err := unix.Unlinkat(recDirFd, recordKey(subDir), 0)
	if err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove record %s/%s for %q: %w", RecordDir, recordKey(subDir), subDir, err)
	}
	return nil
}

// A parent marker records that the driver, not an admin, created a parent
// directory of a nested subDir, so that the parent may be removed when its
// last volume goes. It lives beside the volume records.
func markerKey(dir string) string { return "dir-" + recordKey(dir) }

// CreateParentMarker records that the driver created dir.
func CreateParentMarker(recDirFd int, dir string) error {
	err := unix.Symlinkat(dir, recDirFd, markerKey(dir))
	if err != nil && err != unix.EEXIST {
		return fmt.Errorf("write parent marker %s/%s for %q: %w", RecordDir, markerKey(dir), dir, err)
	}
	return nil
}

// HasParentMarker reports whether the driver created dir.
func HasParentMarker(recDirFd int, dir string) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(recDirFd, markerKey(dir), &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return false, nil
	}
	return err == nil, err
}

// DeleteParentMarker forgets dir; a missing marker is not an error.
func DeleteParentMarker(recDirFd int, dir string) error {
	if err := unix.Unlinkat(recDirFd, markerKey(dir), 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove parent marker %s/%s for %q: %w", RecordDir, markerKey(dir), dir, err)
	}
	return nil
}

// hasRecord reports whether subDir has a record (a volume's or a tombstone),
// with one lookup and no read.
func hasRecord(recDirFd int, subDir string) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(recDirFd, recordKey(subDir), &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up record %s/%s for %q: %w", RecordDir, recordKey(subDir), subDir, err)
	}
	return true, nil
}
