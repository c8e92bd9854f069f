package nfs

import (
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// Snapshot is where one snapshot lives: a directory of the driver's own on
// the share of its source volume (SnapshotDir), never inside a volume. Its
// ID describes it, because DeleteSnapshot receives nothing else.
type Snapshot struct {
	Server       string
	Share        string
	Name         string // the CSI snapshot name
	MountOptions []string
}

const (
	snapshotIDVersion = "s1"
	snapshotIDFields  = 5
	// MaxSnapshotNameLen bounds the CSI name kept in a snapshot ID.
	MaxSnapshotNameLen = 253
)

// SnapshotDir holds the snapshots of a share: "<key>/" is a snapshot's copy
// and "<key>.json" its record, where key is a hash of the snapshot's name.
const SnapshotDir = MetadataDirName + "/snapshots"

// ID renders the snapshot handle:
//
//	s1#<server>#<share>#<name>#<mountOptions>
//
// escaped like a volume ID, so '#' and '%' inside a field cannot split it.
func (s Snapshot) ID() string {
	fields := []string{snapshotIDVersion, s.Server, s.Share, s.Name, strings.Join(s.MountOptions, ",")}
	for i := range fields {
		fields[i] = escapeField(fields[i])
	}
	return strings.Join(fields, idSeparator)
}

// ValidateSnapshotName accepts a CSI snapshot name: 1 to MaxSnapshotNameLen
// bytes of UTF-8 without control characters. The name is never a path: its
// directory is named after its hash.
func ValidateSnapshotName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("snapshot name is empty")
	case len(name) > MaxSnapshotNameLen:
		return fmt.Errorf("snapshot name %.40q... is longer than %d bytes", name, MaxSnapshotNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("snapshot name %q is not UTF-8", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("snapshot name %q contains a control character", name)
		}
	}
	return nil
}

// Validate checks every field with the rules ParseSnapshotID applies.
func (s Snapshot) Validate() error {
	if err := ValidateServer(s.Server); err != nil {
		return err
	}
	if err := ValidateShare(s.Share); err != nil {
		return err
	}
	if err := ValidateSnapshotName(s.Name); err != nil {
		return err
	}
	return ValidateMountOptions(s.MountOptions)
}

// ParseSnapshotID parses an ID made by Snapshot.ID, strictly, as
// ParseVolumeID does: a malformed ID is never treated as a path.
func ParseSnapshotID(id string) (Snapshot, error) {
	fields, err := splitID(id, "snapshot", snapshotIDVersion, snapshotIDFields)
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{Server: fields[1], Share: fields[2], Name: fields[3]}
	if fields[4] != "" {
		s.MountOptions = strings.Split(fields[4], ",")
	}
	if err := s.Validate(); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot ID %q: %w", id, err)
	}
	return s, nil
}

// Key names the snapshot's entries in SnapshotDir.
func (s Snapshot) Key() string { return recordKey(s.Name) }

// DataDir is the snapshot's copy, relative to the share root.
func (s Snapshot) DataDir() string { return SnapshotDir + "/" + s.Key() }

// Source is where the copy is on the server, "server:/share/.nfs-csi/snapshots/<key>".
func (s Snapshot) Source() string { return s.Server + ":" + path.Join(s.Share, s.DataDir()) }

// ShareVolume is the whole share as a Volume, for mounting it. Its policy
// is retain: it is never a volume to dispose of.
func (s Snapshot) ShareVolume() Volume {
	return Volume{Server: s.Server, Share: s.Share, OnDelete: OnDeleteRetain, MountOptions: s.MountOptions}
}

// SnapshotOf is the snapshot named name of the volume vol, on vol's share.
func SnapshotOf(vol Volume, name string) Snapshot {
	return Snapshot{Server: vol.Server, Share: vol.Share, Name: name, MountOptions: vol.MountOptions}
}
