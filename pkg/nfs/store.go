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
// Record). GetByName looks at the key of the name: that is the volume's own
// record when its subDir is its name (CreateVolume's default without a
// subDir template), and otherwise a name entry, a symlink to "name:<subDir>",
// written before the record and removed before it. Sharing the key makes the
// record's one symlink(2) claim the name too for a default volume, and makes
// a volume of a name reused with another subDir meet the other's entry as an
// EEXIST, so the check costs no lookup of its own. Records of the driver
// before this format may have a "name-<hash>" entry instead, which is still
// read. symlink(2) is atomic and exclusive on NFS; rename(2) over a symlink
// replaces it atomically.
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

// nameEntryMark starts the target of a name entry, which no record (JSON)
// starts with.
const nameEntryMark = "name:"

// legacyNamePrefix starts the name entries of the driver before name
// entries shared the key of the name.
const legacyNamePrefix = "name-"

func legacyNameKey(name string) string { return legacyNamePrefix + recordKey(name) }

// needsNameEntry reports whether a volume of this name in subDir gets a name
// entry: not when its record is at the name's key already, nor when the
// entry would pass the symlink limit (such a volume is not found by name).
func needsNameEntry(subDir, name string) bool {
	return name != "" && name != subDir && len(nameEntryMark)+len(subDir) <= MaxRecordLen
}

func (s symlinkStore) Get(subDir string) (Record, bool, error) { return ReadRecord(s.fd, subDir) }

func (s symlinkStore) GetByName(name string) (Record, string, bool, error) {
	rec, target, ok, err := readRecordAt(s.fd, recordKey(name), name)
	if err != nil {
		return Record{}, "", false, err
	}
	subDir := name
	if !ok && target != "" {
		subDir = target
		if rec, ok, err = ReadRecord(s.fd, subDir); err != nil {
			return Record{}, "", false, err
		}
	}
	if ok && rec.live() && rec.HasName(name) {
		return rec, subDir, true, nil
	}
	subDir, err = readLink(s.fd, legacyNameKey(name))
	if errors.Is(err, unix.ENOENT) {
		return Record{}, "", false, nil
	}
	if err != nil {
		return Record{}, "", false, err
	}
	rec, ok, err = ReadRecord(s.fd, subDir)
	if err != nil || !ok || !rec.live() || !rec.HasName(name) {
		// The name entry outlived its record, or another volume reclaimed
		// the subDir: the name is free.
		return Record{}, "", false, err
	}
	return rec, subDir, true, nil
}

func (s symlinkStore) Create(subDir string, rec Record) error {
	_, _, err := s.create(subDir, rec)
	return err
}

// create is Create that returns the record that holds subDir, and its raw
// bytes, with ErrRecordExists, read once.
func (s symlinkStore) create(subDir string, rec Record) (stored Record, raw string, err error) {
	rec.NameEntry = needsNameEntry(subDir, rec.Name)
	wrote := false
	if rec.NameEntry {
		if wrote, err = s.claimName(subDir, rec.Name); err != nil {
			return Record{}, "", err
		}
	}
	stored, raw, err = s.createRecord(subDir, rec)
	if err != nil && wrote {
		// The entry goes with the record: a volume whose record exists
		// without it is one of the driver before name entries were here.
		if derr := unix.Unlinkat(s.fd, recordKey(rec.Name), 0); derr != nil && derr != unix.ENOENT {
			return stored, raw, fmt.Errorf("%w; and the name entry %s/%s of volume %q could not be rolled back: %v", err, RecordDir, recordKey(rec.Name), rec.Name, derr)
		}
	}
	return stored, raw, err
}

// createRecord writes rec at subDir's key, where it may meet the name entry
// of a volume whose name is subDir: a live one refuses, a stale one is
// reclaimed.
func (s symlinkStore) createRecord(subDir string, rec Record) (Record, string, error) {
	for range 3 {
		err := CreateRecord(s.fd, subDir, rec)
		if !errors.Is(err, ErrRecordExists) {
			return Record{}, "", err
		}
		stored, raw, ok, err := readRecordAt(s.fd, recordKey(subDir), subDir)
		switch {
		case err != nil:
			return Record{}, "", err
		case ok:
			return stored, raw, ErrRecordExists
		case raw == "":
			continue // removed between the two calls
		}
		if err := s.nameEntryFree(subDir, raw); err != nil {
			var taken *NameTakenError
			if errors.As(err, &taken) && rec.Name != subDir {
				taken.SubDirClash = subDir
			}
			return Record{}, "", err
		}
	}
	return Record{}, "", fmt.Errorf("the record %s/%s for %q keeps changing under concurrent creates; retry", RecordDir, recordKey(subDir), subDir)
}

// claimName writes the name entry of a volume of this name in subDir,
// exclusively. wrote says whether this call wrote it (not a retry's).
func (s symlinkStore) claimName(subDir, name string) (wrote bool, err error) {
	key := recordKey(name)
	for range 3 {
		err := unix.Symlinkat(nameEntryMark+subDir, s.fd, key)
		if err == nil {
			return true, nil
		}
		if err != unix.EEXIST {
			return false, fmt.Errorf("write name entry %s/%s of volume %q for %q: %w", RecordDir, key, name, subDir, err)
		}
		rec, target, ok, err := readRecordAt(s.fd, key, name)
		switch {
		case err != nil:
			return false, err
		case ok && rec.live() && rec.HasName(name):
			return false, &NameTakenError{Name: name, SubDir: name, Other: rec}
		case ok:
			// A volume whose subDir is this name, of another name: an
			// edge that no template of the README reaches.
			return false, &NameTakenError{Name: name, SubDir: name, Other: rec, NameClash: true}
		case target == "":
			continue
		case target == subDir:
			return false, nil
		}
		if err := s.nameEntryFree(name, target); err != nil {
			return false, err
		}
	}
	return false, fmt.Errorf("the name entry %s/%s of volume %q keeps changing under concurrent creates; retry", RecordDir, key, name)
}

// nameEntryFree checks the name entry of name, which points at target: a
// *NameTakenError when that is a live volume of the name, otherwise the
// stale entry (its volume is gone, or is a tombstone) is removed.
func (s symlinkStore) nameEntryFree(name, target string) error {
	other, ok, err := ReadRecord(s.fd, target)
	if err != nil {
		return err
	}
	if ok && other.live() && other.HasName(name) {
		return &NameTakenError{Name: name, SubDir: target, Other: other}
	}
	_, err = reclaimRecord(s.fd, name, target)
	return err
}

// ErrNameTaken is the refusal to create a second volume of one name.
var ErrNameTaken = errors.New("a volume of this name already exists")

// NameTakenError names the live volume that has the name, and its subDir.
type NameTakenError struct {
	Name   string
	SubDir string
	Other  Record
	// SubDirClash, when set, is the subDir of the refused volume, which is
	// the name of the other volume (Name).
	SubDirClash string
	// NameClash says that the name is the subDir of Other, another volume.
	NameClash bool
}

func (e *NameTakenError) Error() string {
	switch {
	case e.SubDirClash != "":
		return fmt.Sprintf("%v: subDir %s is the name of volume %s, in directory %s, whose name entry is kept where this subDir's record would go; use another subDir",
			ErrNameTaken, e.SubDirClash, e.Other.VolumeID, e.SubDir)
	case e.NameClash:
		return fmt.Sprintf("%v: the name %q is the subDir of volume %q (%s), whose record is kept where this name's entry would go; use another subDir for that volume or another name",
			ErrNameTaken, e.Name, e.Other.Name, e.Other.VolumeID)
	}
	return fmt.Sprintf("%v: volume %q is %s, in directory %s, with other parameters; delete it first or use another name",
		ErrNameTaken, e.Name, e.Other.VolumeID, e.SubDir)
}

func (e *NameTakenError) Unwrap() error { return ErrNameTaken }

// Update replaces the record in one step. The name entry is made sure of
// first (a record of the driver before this format gets one), so that the
// record says truly whether it has one.
func (s symlinkStore) Update(subDir string, rec Record) error {
	rec.NameEntry = false
	if needsNameEntry(subDir, rec.Name) {
		_, err := s.claimName(subDir, rec.Name)
		var taken *NameTakenError
		switch {
		case err == nil:
			rec.NameEntry = true
		case !errors.As(err, &taken):
			return err
		}
	}
	return UpdateRecord(s.fd, subDir, rec)
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
// entry. The entry goes first, and without reading it when rec is live: its
// name's key then holds its entry and nothing else (a record written there
// would have met it, and only the entry of a volume that is not live is
// reclaimed by others).
func (s symlinkStore) deleteRecord(subDir string, rec Record) error {
	hashed := rec.Name == "" || strings.HasPrefix(rec.Name, hashedPrefix)
	if rec.NameEntry && !hashed {
		var err error
		if rec.live() {
			err = ignoreNotExist(unix.Unlinkat(s.fd, recordKey(rec.Name), 0))
		} else {
			// A tombstone's entry is stale, and may have been taken over:
			// it is removed only if it still is this volume's.
			_, err = reclaimRecord(s.fd, rec.Name, subDir)
		}
		if err != nil {
			return fmt.Errorf("remove name entry %s/%s of volume %q: %w", RecordDir, recordKey(rec.Name), rec.Name, err)
		}
	}
	if err := DeleteRecord(s.fd, subDir); err != nil {
		return err
	}
	if rec.NameEntry || hashed || rec.Name == subDir {
		return nil
	}
	// A record of the driver before name entries shared the name's key.
	if err := unix.Unlinkat(s.fd, legacyNameKey(rec.Name), 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove name entry %s/%s of volume %q: %w", RecordDir, legacyNameKey(rec.Name), rec.Name, err)
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
		if !strings.HasPrefix(n, legacyNamePrefix) {
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
		rec, raw, ok, err := readRecordAt(s.fd, key, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			if raw != "" {
				subDirs[recordKey(raw)] = raw
			}
			continue
		}
		out = append(out, ListedRecord{Key: key, Record: rec})
	}
	for i, r := range out {
		sub := subDirs[r.Key]
		if sub == "" && recordKey(r.Record.Name) == r.Key {
			sub = r.Record.Name // a volume whose subDir is its name
		}
		if sub == "" {
			if v, err := ParseVolumeID(r.Record.VolumeID); err == nil && recordKey(v.SubDir) == r.Key {
				sub = v.SubDir
			}
		}
		out[i].SubDir = sub
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
