package nfs

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// RecordStore keeps the controller's records of one share: what it knows
// about the volumes it created there. Snapshots, clones and capacity add
// state to records; they go through this interface, not through the on-share
// format.
type RecordStore interface {
	// Get returns the record of subDir, or ok=false when there is none.
	Get(subDir string) (rec Record, ok bool, err error)
	// GetByName returns the live record (not a tombstone) of the volume with
	// this CSI name, and its subDir, or ok=false when there is none.
	GetByName(name string) (rec Record, subDir string, ok bool, err error)
	// Create writes rec for subDir, failing with ErrRecordExists when any
	// record holds it (of two controllers racing for one subDir, one wins),
	// and with a *NameTakenError, writing nothing, when a live volume of the
	// same name holds another subDir.
	Create(subDir string, rec Record) error
	// Update replaces the record of subDir in one step: a reader sees the old
	// record or the new one.
	Update(subDir string, rec Record) error
	// Delete removes the record of subDir; a missing record is not an error.
	Delete(subDir string) error
	// List returns every record, in no particular order.
	List() ([]ListedRecord, error)
}

// ListedRecord is one record as List finds it.
type ListedRecord struct {
	// Key is the record's entry in the store.
	Key string
	// SubDir is the record's subdirectory, empty when the store cannot tell
	// (a version 2 record with a hashed volume ID and no name entry); Key is
	// then RecordKey of it, for a search of the share's directories.
	SubDir string
	Record Record
}

// RecordKey is the store's key of subDir's record.
func RecordKey(subDir string) string { return recordKey(subDir) }

// symlinkStore is the on-share format: each record is the target of a
// symlink in .nfs-csi/volumes/ named after a hash of its subDir (see
// Record), and a second symlink "name-<hash of the name>" points to the
// subDir for GetByName. symlink(2) is atomic and exclusive on NFS; rename(2)
// over a symlink replaces it atomically.
type symlinkStore struct{ fd int }

// NewSymlinkStore is the RecordStore of the records directory open as recDirFd.
func NewSymlinkStore(recDirFd int) RecordStore { return symlinkStore{fd: recDirFd} }

// Records is the record store of the share.
func (s *Share) Records() (RecordStore, error) {
	fd, err := s.RecordDirFd()
	if err != nil {
		return nil, err
	}
	return symlinkStore{fd: fd}, nil
}

const nameEntryPrefix = "name-"

func nameKey(name string) string { return nameEntryPrefix + recordKey(name) }

func (s symlinkStore) Get(subDir string) (Record, bool, error) { return ReadRecord(s.fd, subDir) }

func (s symlinkStore) GetByName(name string) (Record, string, bool, error) {
	subDir, err := readLink(s.fd, nameKey(name))
	if errors.Is(err, unix.ENOENT) {
		return Record{}, "", false, nil
	}
	if err != nil {
		return Record{}, "", false, err
	}
	rec, ok, err := ReadRecord(s.fd, subDir)
	if err != nil || !ok || !rec.live() || !rec.HasName(name) {
		// The name entry outlived its record, or another volume reclaimed
		// the subDir: the name is free.
		return Record{}, "", false, err
	}
	return rec, subDir, true, nil
}

func (s symlinkStore) Create(subDir string, rec Record) error {
	if err := CreateRecord(s.fd, subDir, rec); err != nil {
		return err
	}
	err := s.indexName(subDir, rec.Name)
	if err != nil {
		if derr := DeleteRecord(s.fd, subDir); derr != nil {
			return fmt.Errorf("%w; and the record could not be rolled back: %v", err, derr)
		}
	}
	return err
}

// ErrNameTaken is the refusal to create a second volume of one name.
var ErrNameTaken = errors.New("a volume of this name already exists")

// NameTakenError names the live volume that has the name, and its subDir.
type NameTakenError struct {
	Name   string
	SubDir string
	Other  Record
}

func (e *NameTakenError) Error() string {
	return fmt.Sprintf("%v: volume %q is %s, in directory %s, with other parameters; delete it first or use another name",
		ErrNameTaken, e.Name, e.Other.VolumeID, e.SubDir)
}

func (e *NameTakenError) Unwrap() error { return ErrNameTaken }

// indexName points the name entry of name at subDir, in one round trip when
// the name is new. An entry left by a volume that is gone, or that is a
// tombstone now, is replaced; one of a live volume elsewhere is a
// *NameTakenError.
func (s symlinkStore) indexName(subDir, name string) error {
	if name == "" {
		return nil
	}
	err := unix.Symlinkat(subDir, s.fd, nameKey(name))
	if err == unix.EEXIST {
		cur, rerr := readLink(s.fd, nameKey(name))
		if rerr == nil && cur == subDir {
			return nil
		}
		if rerr == nil {
			if other, ok, gerr := ReadRecord(s.fd, cur); gerr == nil && ok && other.live() && other.HasName(name) {
				return &NameTakenError{Name: name, SubDir: cur, Other: other}
			}
		}
		err = replaceSymlink(s.fd, nameKey(name), subDir)
	}
	if err != nil {
		return fmt.Errorf("write name entry %s/%s of volume %q for %q: %w", RecordDir, nameKey(name), name, subDir, err)
	}
	return nil
}

func (s symlinkStore) Update(subDir string, rec Record) error {
	if err := UpdateRecord(s.fd, subDir, rec); err != nil {
		return err
	}
	return s.indexName(subDir, rec.Name)
}

func (s symlinkStore) Delete(subDir string) error {
	rec, ok, err := ReadRecord(s.fd, subDir)
	if err != nil {
		// A corrupt record is still removed; its name entry then dangles,
		// which GetByName tolerates.
		ok = false
	}
	if !ok {
		return DeleteRecord(s.fd, subDir)
	}
	return s.deleteRecord(subDir, rec)
}

// deleteRecord removes the record rec of subDir, already read, and its name
// entry. The entry is removed without reading it first: while rec is live no
// other live volume can have its name on this share.
func (s symlinkStore) deleteRecord(subDir string, rec Record) error {
	if err := DeleteRecord(s.fd, subDir); err != nil {
		return err
	}
	if rec.Name == "" || strings.HasPrefix(rec.Name, hashedPrefix) {
		return nil
	}
	if err := unix.Unlinkat(s.fd, nameKey(rec.Name), 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove name entry %s/%s of volume %q: %w", RecordDir, nameKey(rec.Name), rec.Name, err)
	}
	return nil
}

func (s symlinkStore) List() ([]ListedRecord, error) {
	names, err := recordNames(s.fd)
	if err != nil {
		return nil, err
	}
	// Name entries and version 1 volume IDs say which subDir a key is of.
	subDirs := map[string]string{}
	for n := range names {
		if !strings.HasPrefix(n, nameEntryPrefix) {
			continue
		}
		if sub, err := readLink(s.fd, n); err == nil {
			subDirs[recordKey(sub)] = sub
		}
	}
	var out []ListedRecord
	for key := range names {
		if !isRecordKey(key) {
			continue
		}
		rec, _, ok, err := readRecordAt(s.fd, key, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		sub := subDirs[key]
		if sub == "" {
			if v, err := ParseVolumeID(rec.VolumeID); err == nil && recordKey(v.SubDir) == key {
				sub = v.SubDir
			}
		}
		out = append(out, ListedRecord{Key: key, SubDir: sub, Record: rec})
	}
	return out, nil
}

// isRecordKey tells a record's entry (32 hex digits) from the markers,
// name entries and temporary names beside it.
func isRecordKey(name string) bool {
	return len(name) == 32 && strings.Trim(name, "0123456789abcdef") == ""
}

// replaceSymlink points name at target in one step, through a temporary
// symlink renamed over it.
func replaceSymlink(dirFd int, name, target string) error {
	tmp := tempName("update-" + name)
	if err := unix.Symlinkat(target, dirFd, tmp); err != nil {
		return err
	}
	if err := unix.Renameat(dirFd, tmp, dirFd, name); err != nil {
		_ = unix.Unlinkat(dirFd, tmp, 0)
		return err
	}
	return nil
}
