package nfs

import (
	"fmt"
	"path"
	"strings"
)

// OnDelete says what DeleteVolume does with a volume's directory.
type OnDelete string

// The delete policies a StorageClass may choose.
const (
	OnDeleteDelete  OnDelete = "delete"
	OnDeleteRetain  OnDelete = "retain"
	OnDeleteArchive OnDelete = "archive"
)

// ParseOnDelete accepts the three policy names.
func ParseOnDelete(s string) (OnDelete, error) {
	switch p := OnDelete(s); p {
	case OnDeleteDelete, OnDeleteRetain, OnDeleteArchive:
		return p, nil
	}
	return "", fmt.Errorf("onDelete %q is not one of delete, retain, archive", s)
}

// Volume is everything needed to find, mount and dispose of one volume. Its
// ID is self-describing so that DeleteVolume, which receives no parameters,
// still knows the server, share, directory and policy.
type Volume struct {
	Server       string
	Share        string
	SubDir       string // relative to Share; empty only for a static whole-share volume
	OnDelete     OnDelete
	MountOptions []string
}

const (
	idVersion   = "v1"
	idSeparator = "#"
	idFields    = 6
)

// ID renders the volume handle:
//
//	v1#<onDelete>#<server>#<share>#<subDir>#<mountOptions>
//
// Each field is escaped so that '#' and '%' inside it cannot split fields.
// The same Volume always yields the same ID.
func (v Volume) ID() string {
	fields := []string{idVersion, string(v.OnDelete), v.Server, v.Share, v.SubDir, strings.Join(v.MountOptions, ",")}
	for i := range fields {
		fields[i] = escapeField(fields[i])
	}
	return strings.Join(fields, idSeparator)
}

// Source is the NFS mount source of the volume's directory, "server:/share/subDir".
func (v Volume) Source() string {
	return v.Server + ":" + path.Join(v.Share, v.SubDir)
}

// ShareSource is the NFS mount source of the whole share.
func (v Volume) ShareSource() string {
	return v.Server + ":" + v.Share
}

// Validate checks every field with the same rules ParseVolumeID applies.
func (v Volume) Validate() error {
	if err := ValidateServer(v.Server); err != nil {
		return err
	}
	if err := ValidateShare(v.Share); err != nil {
		return err
	}
	if err := ValidateSubDir(v.SubDir); err != nil {
		return err
	}
	if _, err := ParseOnDelete(string(v.OnDelete)); err != nil {
		return err
	}
	return ValidateMountOptions(v.MountOptions)
}

// ParseVolumeID parses an ID made by Volume.ID, strictly: a wrong version, a
// wrong field count, a bad escape or any field that fails validation is an
// error. A malformed ID is never treated as a path.
func ParseVolumeID(id string) (Volume, error) {
	fields, err := splitID(id, "volume", idVersion, idFields)
	if err != nil {
		return Volume{}, err
	}
	policy, err := ParseOnDelete(fields[1])
	if err != nil {
		return Volume{}, fmt.Errorf("volume ID %q: %w", id, err)
	}
	v := Volume{Server: fields[2], Share: fields[3], SubDir: fields[4], OnDelete: policy}
	if fields[5] != "" {
		v.MountOptions = strings.Split(fields[5], ",")
	}
	if err := v.Validate(); err != nil {
		return Volume{}, fmt.Errorf("volume ID %q: %w", id, err)
	}
	return v, nil
}

// ParseMountOptions splits a comma-separated option list, dropping blanks
// around items, and validates it.
func ParseMountOptions(s string) ([]string, error) {
	var opts []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			opts = append(opts, o)
		}
	}
	return opts, ValidateMountOptions(opts)
}

// ValidateMountOptions rejects options that could not survive a round trip
// through "-o a,b,c": empty items, commas, whitespace and control characters.
func ValidateMountOptions(opts []string) error {
	for _, o := range opts {
		if o == "" {
			return fmt.Errorf("mount options contain an empty option")
		}
		for _, r := range o {
			if r == ',' || r <= ' ' || r == 0x7f {
				return fmt.Errorf("mount option %q contains a comma, space or control character", o)
			}
		}
	}
	return nil
}

// MergeMountOptions returns the options of all lists in order, without
// duplicates, so the StorageClass parameter and the PV's mountOptions combine.
func MergeMountOptions(lists ...[]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lists {
		for _, o := range l {
			if !seen[o] {
				seen[o] = true
				out = append(out, o)
			}
		}
	}
	return out
}

// splitID splits a self-describing ID of kind ("volume", "snapshot") into
// its n unescaped fields, checking the count and the version.
func splitID(id, kind, version string, n int) ([]string, error) {
	fields := strings.Split(id, idSeparator)
	if len(fields) != n {
		return nil, fmt.Errorf("%s ID %q is not an nfs-csi %s ID (want %d '#'-separated fields, got %d)", kind, id, kind, n, len(fields))
	}
	for i, f := range fields {
		u, err := unescapeField(f)
		if err != nil {
			return nil, fmt.Errorf("%s ID %q: field %d: %w", kind, id, i+1, err)
		}
		fields[i] = u
	}
	if fields[0] != version {
		return nil, fmt.Errorf("%s ID %q has version %q; this driver reads %s", kind, id, fields[0], version)
	}
	return fields, nil
}

func escapeField(s string) string {
	s = strings.ReplaceAll(s, "%", "%25")
	return strings.ReplaceAll(s, "#", "%23")
}

func unescapeField(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "%25"):
			b.WriteByte('%')
		case strings.HasPrefix(s[i:], "%23"):
			b.WriteByte('#')
		default:
			return "", fmt.Errorf("bad escape at %q (only %%25 and %%23 are used)", s[i:])
		}
		i += 2
	}
	return b.String(), nil
}
